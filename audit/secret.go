package audit

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/nhisync/nhisync"
)

// secretFileHeader is the comment line written above the HMAC secret.
const secretFileHeader = "# nhisync audit HMAC secret: hashes sensitive values in the audit log (HMAC-SHA256). Keep it secret.\n"

// secretSize is the HMAC secret's length: SHA-256's block-sized key
// strength (32 bytes).
const secretSize = 32

// LoadOrCreateSecret returns the HMAC-SHA256 secret in the file at path,
// creating it (32 random bytes, base64, mode 0600, parent directories
// 0700) on first use. The file follows the signing key's rules: a
// regular file, not readable by group or others. Errors are EINVALID
// (bad file or permissions) or EINTERNAL; messages never hold the secret.
func LoadOrCreateSecret(path string) ([]byte, error) {
	const op = "audit.LoadOrCreateSecret"
	if path == "" {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "no HMAC secret file given (audit.hmac_key)"}
	}
	b, err := readPrivate(op, path, "HMAC secret")
	if errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, secretSize)
		if _, err := rand.Read(raw); err != nil {
			return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "cannot generate an HMAC secret", Err: err}
		}
		content := secretFileHeader + base64.StdEncoding.EncodeToString(raw) + "\n"
		if err := createPrivate(op, path, "HMAC secret", []byte(content)); err != nil {
			return nil, err
		}
		b, err = readPrivate(op, path, "HMAC secret")
	}
	if err != nil {
		return nil, err
	}
	var lines []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	var secret []byte
	if len(lines) == 1 {
		secret, err = base64.StdEncoding.DecodeString(lines[0])
	}
	if len(lines) != 1 || err != nil || len(secret) < secretSize {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op,
			Message: fmt.Sprintf("HMAC secret %s must hold one line of base64 with at least %d bytes; remove the file to have a new one made (values hashed before stay hashed with the old one)", path, secretSize)}
	}
	return secret, nil
}

// Keys are what a command that may append to the audit log needs before
// anything runs: the signing key (its notary) and the HMAC secret.
type Keys struct {
	Signer *Signer
	Secret []byte
	Notary *Notary
}

// OpenKeys checks and loads the signing key and the HMAC secret, creating
// them when missing if create is set. They are preconditions: a command
// calls it before it opens a system or writes anything, so a key with the
// wrong mode stops it at once. Without create, a missing signing key or
// secret returns nil keys and no error (an auditor's command on a copy of
// the store). publish is audit.publish ("" for none); clock stamps
// checkpoints (nil: the system clock). Errors are those of LoadOrCreateKey and
// LoadOrCreateSecret: EINVALID for a file with the wrong mode or content,
// EINTERNAL when the file system fails.
func OpenKeys(keyPath, secretPath, publish string, create bool, clock nhisync.Clock) (*Keys, error) {
	if !create {
		for _, p := range []string{keyPath, secretPath} {
			if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
		}
	}
	s, err := LoadOrCreateKey(keyPath, "nhisync")
	if err != nil {
		return nil, err
	}
	secret, err := LoadOrCreateSecret(secretPath)
	if err != nil {
		return nil, err
	}
	n, err := NewNotary(s, publish, clock)
	if err != nil {
		return nil, err
	}
	return &Keys{Signer: s, Secret: secret, Notary: n}, nil
}
