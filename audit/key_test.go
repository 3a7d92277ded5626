package audit

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/nhisync/nhisync"
	"golang.org/x/mod/sumdb/note"
)

func TestLoadOrCreateKeyCreatesThenLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "keys")
	path := filepath.Join(dir, "audit.key")
	s, err := LoadOrCreateKey(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Origin(), OriginPrefix+"-") || len(s.Origin()) != len(OriginPrefix)+1+8 {
		t.Errorf("origin %q, want %s-<8 hex digits>", s.Origin(), OriginPrefix)
	}
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatalf("verifier key %q does not parse: %v", s.VerifierKey(), err)
	}
	if v.Name() != s.Origin() {
		t.Errorf("verifier key names %q, origin is %q", v.Name(), s.Origin())
	}

	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700, filepath.Dir(dir): 0o700} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != want {
				t.Errorf("%s: mode %04o, want %04o", filepath.Base(p), got, want)
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keyLines []string
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "#") {
			keyLines = append(keyLines, strings.TrimSpace(line))
		}
	}
	if len(keyLines) != 1 || !strings.HasPrefix(keyLines[0], "PRIVATE+KEY+"+s.Origin()+"+") {
		t.Fatalf("key file holds %q, want one PRIVATE+KEY+%s+… line", keyLines, s.Origin())
	}
	if _, err := note.NewSigner(keyLines[0]); err != nil {
		t.Errorf("key line is not a signed-note signer key: %v", err)
	}
	if strings.Contains(s.VerifierKey(), keyLines[0]) {
		t.Error("verifier key holds the private key")
	}

	again, err := LoadOrCreateKey(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if again.VerifierKey() != s.VerifierKey() {
		t.Errorf("second load: verifier key %q, want %q", again.VerifierKey(), s.VerifierKey())
	}
	if named, err := LoadOrCreateKey(path, s.Origin()); err != nil || named.VerifierKey() != s.VerifierKey() {
		t.Errorf("load with its own origin: %v", err)
	}
}

func TestLoadOrCreateKeyOrigin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.key")
	s, err := LoadOrCreateKey(path, "example.org/nhisync")
	if err != nil {
		t.Fatal(err)
	}
	if s.Origin() != "example.org/nhisync" || !strings.HasPrefix(s.VerifierKey(), "example.org/nhisync+") {
		t.Errorf("origin %q, verifier key %q", s.Origin(), s.VerifierKey())
	}
	_, err = LoadOrCreateKey(path, "another-log")
	wantCode(t, err, nhisync.EINVALID)
	if !strings.Contains(nhisync.ErrorMessage(err), `belongs to log "example.org/nhisync"`) {
		t.Errorf("message %q does not name the key's log", nhisync.ErrorMessage(err))
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	skey, _, err := note.GenerateKey(rand.Reader, "other")
	if err != nil {
		t.Fatal(err)
	}
	// Same form, but the key hash does not match the key.
	badHash := strings.Replace(skey, "+other+", "+renamed+", 1)
	tests := []struct {
		name    string
		content string // written with mode
		mode    os.FileMode
		dir     bool
		path    string // instead of a file in a temp dir
		origin  string
		want    string // in the message
	}{
		{name: "empty path", path: "-", want: "no signing key file"},
		{name: "origin with space", origin: "my log", want: "without spaces"},
		{name: "origin with plus", origin: "a+b", want: "without spaces or '+'"},
		{name: "readable by others", content: skey + "\n", mode: 0o644, want: "readable by group or others"},
		{name: "garbage", content: "hello\n", mode: 0o600, want: "not an ed25519 key in signed-note form"},
		{name: "hash mismatch", content: badHash + "\n", mode: 0o600, want: "not an ed25519 key in signed-note form"},
		{name: "two keys", content: skey + "\n" + skey + "\n", mode: 0o600, want: "exactly one key line, found 2"},
		{name: "only comments", content: "# nothing\n", mode: 0o600, want: "exactly one key line, found 0"},
		{name: "a directory", dir: true, want: "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.mode&0o077 != 0 && runtime.GOOS == "windows" {
				t.Skip("no Unix permissions")
			}
			path := filepath.Join(t.TempDir(), "audit.key")
			switch {
			case tt.path == "-":
				path = ""
			case tt.dir:
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			case tt.content != "":
				if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadOrCreateKey(path, tt.origin)
			wantCode(t, err, nhisync.EINVALID)
			msg := nhisync.ErrorMessage(err)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to contain %q", msg, tt.want)
			}
			if secret := strings.SplitN(skey, "+", 5)[4]; strings.Contains(err.Error(), secret) {
				t.Errorf("error %q reveals the key", err)
			}
		})
	}
}

func TestLoadOrCreateKeyConcurrentAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.key")
	const n = 8
	keys := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := LoadOrCreateKey(path, "")
			errs[i] = err
			if err == nil {
				keys[i] = s.VerifierKey()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if keys[i] != keys[0] {
			t.Fatalf("caller %d got key %q, caller 0 %q", i, keys[i], keys[0])
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the key (temporary files left behind?)", len(entries))
	}
}

func TestNewSigner(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "some-log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.VerifierKey() != vkey || s.Origin() != "some-log" {
		t.Errorf("signer %q %q, want %q %q", s.Origin(), s.VerifierKey(), "some-log", vkey)
	}
	_, err = NewSigner(vkey)
	wantCode(t, err, nhisync.EINVALID)
	if strings.Contains(err.Error(), vkey) {
		t.Errorf("error %q repeats the key", err)
	}
}
