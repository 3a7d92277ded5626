//go:build unix

package main

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// deadHolder reports whether a lease holder ("host/pid") is a process of
// this host that no longer exists, so a killed pass does not block the
// next one until its lease expires.
func deadHolder(holder string) bool {
	host, pidText, ok := strings.Cut(holder, "/")
	if !ok {
		return false
	}
	me, _ := os.Hostname()
	pid, err := strconv.Atoi(pidText)
	if err != nil || host != me || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
