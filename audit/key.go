package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nhisync/nhisync"
	"golang.org/x/mod/sumdb/note"
)

// OriginPrefix starts the origin of every log whose key LoadOrCreateKey
// names itself: "nhisync-audit-" and 8 hex digits of the SHA-256 of the
// public key, so two installations never share an origin.
const OriginPrefix = "nhisync-audit"

// keyFileHeader is the comment line written above the key.
const keyFileHeader = "# nhisync audit signing key: ed25519, golang.org/x/mod/sumdb/note signer form. Keep it secret.\n"

// Signer signs audit checkpoints with an ed25519 key. The key's name is
// the log's origin: the first line of every checkpoint it signs.
type Signer struct {
	origin string
	signer note.Signer
	vkey   string
}

// LoadOrCreateKey returns the signer whose key is in the file at path,
// creating the key on first use.
//
// The file is text: comment lines starting with "#" and one line holding
// the private key in signed-note form, "PRIVATE+KEY+<name>+<hash>+<key>"
// (as golang.org/x/mod/sumdb/note.GenerateKey writes it), where <key> is
// base64 of 0x01 (ed25519) and the 32-byte seed. A new file is created
// with mode 0600, and missing parent directories with 0700; creating is
// atomic, so two processes starting at once agree on one key. On Unix an
// existing file readable by group or others is refused, as ssh does.
//
// origin names the log (and the key); "" means the key's own name when
// the file exists, and OriginPrefix plus a fingerprint of the key when it
// is created. An existing key named differently from a non-empty origin
// is refused. Errors are EINVALID (bad path, origin, file or permissions)
// or EINTERNAL (the file system failed); messages never hold the key.
func LoadOrCreateKey(path, origin string) (*Signer, error) {
	const op = "audit.LoadOrCreateKey"
	if path == "" {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "no signing key file given (audit.signing_key)"}
	}
	if origin != "" && !validName(origin) {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op,
			Message: fmt.Sprintf("log origin %q must be non-empty text without spaces or '+'", origin)}
	}
	s, err := loadKey(op, path, origin)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	return createKey(op, path, origin)
}

// NewSigner returns a signer for a private key in signed-note form
// ("PRIVATE+KEY+name+hash+key"). A malformed key or one that is not
// ed25519 is EINVALID.
func NewSigner(privateKey string) (*Signer, error) {
	s, err := parseSigner(strings.TrimSpace(privateKey))
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: "audit.NewSigner", Message: err.Error()}
	}
	return s, nil
}

// Origin returns the origin line of the checkpoints s signs, which is
// also the key's name.
func (s *Signer) Origin() string { return s.origin }

// VerifierKey returns the public key in signed-note verifier form,
// "<name>+<hash>+<base64 key>": what `nhisync audit key` prints, so
// anyone can check a checkpoint without trusting nhisync.
func (s *Signer) VerifierKey() string { return s.vkey }

// sign signs text (which ends in a newline) as a note.
func (s *Signer) sign(text []byte) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(text)}, s.signer)
}

// parseSigner parses a private key in signed-note form. Its errors never
// hold the key.
func parseSigner(skey string) (*Signer, error) {
	ns, err := note.NewSigner(skey)
	if err != nil {
		return nil, errors.New("the signing key is not an ed25519 key in signed-note form (PRIVATE+KEY+name+hash+key)")
	}
	// NewSigner checked the form and that the key hash matches the
	// public key derived from the seed; derive it again for the verifier.
	// The form is PRIVATE+KEY+name+hash+key, and base64 may hold '+'.
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("the signing key is not an ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(ns.Name(), pub)
	if err != nil {
		return nil, errors.New("the signing key is not an ed25519 key")
	}
	return &Signer{origin: ns.Name(), signer: ns, vkey: vkey}, nil
}

// loadKey reads an existing key file. A missing file is an error that
// wraps fs.ErrNotExist.
func loadKey(op, path, origin string) (*Signer, error) {
	b, err := readPrivate(op, path, "signing key")
	if err != nil {
		return nil, err
	}
	var keys []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, line)
		}
	}
	if len(keys) != 1 {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op,
			Message: fmt.Sprintf("signing key %s must hold exactly one key line, found %d", path, len(keys))}
	}
	s, err := parseSigner(keys[0])
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("signing key %s: %v", path, err)}
	}
	if origin != "" && s.origin != origin {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op,
			Message: fmt.Sprintf("signing key %s belongs to log %q, not %q", path, s.origin, origin)}
	}
	return s, nil
}

// readPrivate reads a secret file (the signing key, the HMAC secret): a
// regular file that neither group nor others may read (on Unix, as ssh
// requires), at most 64 KiB. A missing file is an error that wraps
// fs.ErrNotExist. Messages name the file, never its content.
func readPrivate(op, path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot open %s %s", what, path), Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot stat %s %s", what, path), Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("%s %s is not a regular file", what, path)}
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op,
			Message: fmt.Sprintf("%s %s is readable by group or others (mode %04o); run chmod 600 on it (and, if others could read it, replace it: it may be known)", what, path, st.Mode().Perm())}
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot read %s %s", what, path), Err: err}
	}
	return b, nil
}

// createKey makes a new key file at path, or loads the one another
// process created first.
func createKey(op, path, origin string) (*Signer, error) {
	skey, err := generateKey(rand.Reader, origin)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "cannot generate a signing key", Err: err}
	}
	if err := createPrivate(op, path, "signing key", []byte(keyFileHeader+skey+"\n")); err != nil {
		return nil, err
	}
	return loadKey(op, path, origin)
}

// createPrivate creates a secret file at path holding content, mode 0600
// (missing parent directories 0700). Creating is atomic: the file appears
// whole or not at all, and one that exists (another process was first)
// is left as it is, without error.
func createPrivate(op, path, what string, content []byte) error {
	fail := func(err error) error {
		return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot create %s %s", what, path), Err: err}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	// Write a complete temporary file, then link it into place: the file
	// appears whole or not at all, and never replaces one that exists.
	tmp, err := os.CreateTemp(dir, ".audit-secret-*")
	if err != nil {
		return fail(err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := writeSync(tmp, content); err != nil {
		return fail(err)
	}
	err = os.Link(tmpName, path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Some file systems have no hard links: create exclusively.
		err = createExclusive(path, content)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fail(err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: make the new name durable
		d.Close()
	}
	return nil
}

// generateKey returns a new private key in signed-note form named origin,
// or OriginPrefix plus the key's fingerprint when origin is "".
func generateKey(random io.Reader, origin string) (string, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return "", err
	}
	name := origin
	if name == "" {
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		sum := sha256.Sum256(pub)
		name = OriginPrefix + "-" + hex.EncodeToString(sum[:4])
	}
	// note.GenerateKey derives the key from exactly SeedSize bytes of its
	// reader (crypto/ed25519.GenerateKey documents this), so it makes the
	// key of our seed in the format it owns.
	skey, _, err := note.GenerateKey(bytes.NewReader(seed), name)
	return skey, err
}

// writeSync writes b to f, flushes it to disk and closes f.
func writeSync(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// createExclusive creates path with mode 0600 holding b, failing with
// fs.ErrExist when it exists.
func createExclusive(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := writeSync(f, b); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// validName reports whether s can name a signed-note key and a checkpoint
// origin: non-empty UTF-8 without spaces or '+'.
func validName(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsSpace) && !strings.Contains(s, "+")
}
