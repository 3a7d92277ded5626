package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/nhisync/nhisync/quickstart"
)

// openPTY opens a pseudo-terminal pair: what a program writes to tty the
// test reads from ptmx.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		ptmx.Close()
		t.Skipf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		ptmx.Close()
		t.Skipf("ptsname: %v", e)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptmx.Close()
		t.Skipf("open the terminal side: %v", err)
	}
	return ptmx, tty
}

// TestTerminalColor is the control for TestTableOutputHasNoEscapes: on a
// terminal the tables are colored, unless NO_COLOR is set.
func TestTerminalColor(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	t.Setenv("TERM", "xterm-256color")
	for _, noColor := range []bool{false, true} {
		if noColor {
			t.Setenv("NO_COLOR", "1")
		} else {
			unsetenv(t, "NO_COLOR")
		}
		ptmx, tty := openPTY(t)
		read := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(ptmx) // ends with EIO once tty is closed
			read <- b
		}()
		var stderr bytes.Buffer
		code := run(t.Context(), []string{"-c", w.config, "audit", "verify"}, tty, &stderr)
		tty.Close()
		out := string(<-read)
		ptmx.Close()
		if code != exitOK {
			t.Fatalf("audit verify on a terminal: exit %d %q", code, stderr.String())
		}
		if got := strings.Contains(out, "\x1b["); got == noColor {
			t.Errorf("NO_COLOR set: %v; ANSI escapes on the terminal: %v\n%q", noColor, got, out)
		}
	}
}
