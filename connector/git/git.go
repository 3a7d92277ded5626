// Package git owns the `git` connector: ownership-as-code kept as YAML in
// a git repository (Backstage `catalog-info.yaml` files, or any YAML files
// a glob names). Each YAML document (a file may hold several, split by
// `---`) is one record; native fields are paths into it
// (`metadata.name`, `spec.owner`, `metadata.annotations["nhi.example/owner"]`).
//
// What the system holds is what is committed on `branch`, never a working
// tree: reads walk the branch head's tree, and writes are one commit per
// Apply batch on that branch, made with go-git alone (no git binary).
// A write applies only if the entity still holds its Old values at the
// branch head the commit is made on: the head is re-read before each
// commit and the branch is moved with a compare-and-swap, so a commit that
// landed in between makes the batch start again from the new head. Only
// the documents written are re-encoded (from their YAML node trees, so
// comments and key order stay); every other byte of a file is kept.
//
// Settings: `repo` (a path to a repository, bare or not, or a URL: the
// repository is then cloned into memory, fetched before each read and
// pushed to after each commit), `branch` (default main), `glob` (default
// **/catalog-info.yaml), `commit: {author: "Name <email>", message}`,
// `push` (a remote URL or path every commit is pushed to; a rejected push
// undoes the commit), `create_path` (the file new entities are appended
// to, default the first file the glob matches, else catalog-info.yaml).
//
// The change cursor is the commit id: Changes reads only the files that
// differ between that commit and the head.
package git

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/go-git/go-billy/v5/osfs"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// Setting names of the git connector.
const (
	SettingRepo       = "repo"
	SettingBranch     = "branch"
	SettingGlob       = "glob"
	SettingCommit     = "commit"
	SettingPush       = "push"
	SettingCreatePath = "create_path"
	SettingTimeout    = "timeout"
)

// Defaults.
const (
	DefaultBranch  = "main"
	DefaultGlob    = "**/catalog-info.yaml"
	DefaultAuthor  = "nhisync <nhisync@localhost>"
	DefaultMessage = "nhisync: sync governance fields"
	// DefaultTimeout bounds each fetch and push of a remote.
	DefaultTimeout = 60 * time.Second
)

func init() {
	nhisync.RegisterDriver("git", nhisync.Driver{
		Settings: []string{SettingRepo, SettingBranch, SettingGlob, SettingCommit, SettingPush, SettingCreatePath, SettingTimeout},
		Validate: Validate,
		Open: func(ctx context.Context, sys *nhisync.System, kind *nhisync.Kind) (nhisync.Connector, error) {
			return Open(ctx, sys, kind)
		},
	})
	// go-git's file:// transport runs git-upload-pack/receive-pack
	// binaries; serve local repositories in process instead, so pushing to
	// a repository on disk needs no git installed.
	client.InstallProtocol("file", server.NewClient(localLoader{}))
}

var (
	_ nhisync.Connector = (*Connector)(nil)
	_ nhisync.Changer   = (*Connector)(nil)
	_ nhisync.Checker   = (*Connector)(nil)
	_ nhisync.Scrubber  = (*Connector)(nil)

	_ nhisync.CapabilityTeller = (*Connector)(nil)
)

// localLoader opens a repository on disk for the in-process transport:
// a bare one at the path, or the .git directory of a working copy.
type localLoader struct{}

func (localLoader) Load(ep *transport.Endpoint) (storer.Storer, error) {
	dir := ep.Path
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		dir = filepath.Join(dir, ".git")
	}
	if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
		return nil, transport.ErrRepositoryNotFound
	}
	return filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault()), nil
}

// Connector reads and writes one branch of one repository. Writes from
// one Connector are serialized; writes by anyone else are detected by the
// branch having moved.
type Connector struct {
	sys  *nhisync.System
	kind *nhisync.Kind
	repo *gogit.Repository
	// remote is true when repo is a URL: the repository is a clone in
	// memory of origin, fetched before reads and pushed to after commits.
	remote bool
	branch plumbing.ReferenceName
	glob   string
	push   string
	create string
	author mail.Address
	msg    string
	// timeout bounds each fetch and push.
	timeout time.Duration
	fields  []field
	id      *field
	match   []int
	// Now stamps commits (time.Now by default); Rand makes ids of created
	// records.
	Now  func() time.Time
	Rand io.Reader

	mu sync.Mutex
	// beforeSwap, when set, runs after a commit is made and before the
	// branch is moved to it (tests land a concurrent commit there).
	beforeSwap func()
}

type field struct {
	m    *nhisync.Mapping
	path native.Path
}

// Validate checks a git system's settings without reaching the
// repository. It returns *nhisync.Error EINVALID naming the setting.
func Validate(sys *nhisync.System, kind *nhisync.Kind) error {
	_, err := configure(sys, kind)
	return err
}

func configure(sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	c := &Connector{sys: sys, kind: kind, Now: time.Now, Rand: rand.Reader, timeout: DefaultTimeout}
	repo := strings.TrimSpace(sys.Settings.String(SettingRepo))
	if repo == "" {
		return nil, c.errorf(nhisync.EINVALID, "set repo: the path or URL of the git repository holding the catalog files")
	}
	if t := sys.Settings.String(SettingTimeout); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return nil, c.errorf(nhisync.EINVALID, "timeout %q is not a positive duration such as 30s", t)
		}
		c.timeout = d
	}
	br := strings.TrimSpace(sys.Settings.String(SettingBranch))
	if br == "" {
		br = DefaultBranch
	}
	c.branch = plumbing.NewBranchReferenceName(br)
	if err := c.branch.Validate(); err != nil {
		return nil, c.errorf(nhisync.EINVALID, "branch %q is not a valid branch name", br)
	}
	c.glob = strings.TrimSpace(sys.Settings.String(SettingGlob))
	if c.glob == "" {
		c.glob = DefaultGlob
	}
	if !doublestar.ValidatePattern(c.glob) {
		return nil, c.errorf(nhisync.EINVALID, "glob %q is not a valid pattern; write e.g. **/catalog-info.yaml", c.glob)
	}
	c.push = strings.TrimSpace(sys.Settings.String(SettingPush))
	c.create = strings.TrimSpace(sys.Settings.String(SettingCreatePath))
	if c.create != "" && (filepath.IsAbs(c.create) || strings.HasPrefix(filepath.Clean(c.create), "..")) {
		return nil, c.errorf(nhisync.EINVALID, "create_path %q must be a path inside the repository", c.create)
	}
	author, msg := DefaultAuthor, DefaultMessage
	switch v := sys.Settings[SettingCommit].(type) {
	case nil:
	case map[string]any:
		for k := range v {
			if k != "author" && k != "message" {
				return nil, c.errorf(nhisync.EINVALID, "commit: unknown key %q; commit takes author and message", k)
			}
		}
		cs := nhisync.Settings(v)
		if a := strings.TrimSpace(cs.String("author")); a != "" {
			author = a
		}
		if m := strings.TrimSpace(cs.String("message")); m != "" {
			msg = m
		}
	default:
		return nil, c.errorf(nhisync.EINVALID, "commit must be a mapping: commit: {author: \"Name <email>\", message: \"…\"}")
	}
	a, err := mail.ParseAddress(author)
	if err != nil {
		return nil, c.errorf(nhisync.EINVALID, "commit.author %q: write it as \"Name <email>\"", author)
	}
	c.author, c.msg = *a, msg
	for _, m := range sys.Fields {
		p, err := native.ParsePath(m.Name)
		if err != nil {
			return nil, c.errorf(nhisync.EINVALID, "field %s: %s", m.Field, nhisync.ErrorMessage(err))
		}
		c.fields = append(c.fields, field{m: m, path: p})
	}
	if sys.ID != "" {
		p, err := native.ParsePath(sys.ID)
		if err != nil {
			return nil, c.errorf(nhisync.EINVALID, "id: %s", nhisync.ErrorMessage(err))
		}
		c.id = &field{path: p}
	} else {
		for _, mf := range kind.Match {
			for i, m := range sys.Fields {
				if m.Field == mf {
					c.match = append(c.match, i)
				}
			}
		}
		if len(c.match) == 0 {
			return nil, c.errorf(nhisync.EINVALID, "set id (e.g. metadata.name) or map a match field (%s): records need an id", strings.Join(kind.Match, ", "))
		}
	}
	return c, nil
}

// isURL reports whether repo names a remote repository rather than a path.
func isURL(repo string) bool {
	return strings.Contains(repo, "://") || (strings.Contains(repo, "@") && strings.Contains(repo, ":") && !filepath.IsAbs(repo))
}

// Open returns a connector for sys: it opens the repository at a path, or
// clones one at a URL into memory. It returns *nhisync.Error EINVALID for
// bad settings and EUNAVAIL when the repository cannot be reached.
func Open(ctx context.Context, sys *nhisync.System, kind *nhisync.Kind) (*Connector, error) {
	c, err := configure(sys, kind)
	if err != nil {
		return nil, err
	}
	repo := strings.TrimSpace(sys.Settings.String(SettingRepo))
	if isURL(repo) {
		c.remote = true
		c.repo, err = gogit.Init(memoryStorage(), nil)
		if err == nil {
			_, err = c.repo.CreateRemote(remoteConfig("origin", repo))
		}
		if err != nil {
			return nil, c.unavail(err, "cannot set up a clone of %s", redactURL(repo))
		}
		return c, nil
	}
	if !filepath.IsAbs(repo) {
		repo = filepath.Join(sys.BaseDir, repo)
	}
	c.repo, err = gogit.PlainOpenWithOptions(repo, &gogit.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return nil, c.unavail(err, "cannot open the git repository at %s (create it with git init, or fix repo)", sys.Settings.String(SettingRepo))
	}
	return c, nil
}

// errorf returns an *nhisync.Error whose message names the system.
func (c *Connector) errorf(code, format string, args ...any) *nhisync.Error {
	return &nhisync.Error{Code: code, Message: fmt.Sprintf("system %s: ", c.sys.Name) + fmt.Sprintf(format, args...)}
}

func (c *Connector) unavail(err error, format string, args ...any) *nhisync.Error {
	e := c.errorf(nhisync.EUNAVAIL, format, args...)
	e.Err = redactErr{err}
	return e
}

// redactErr hides credentials a URL in an underlying error may carry.
type redactErr struct{ err error }

func (r redactErr) Error() string { return redactURL(r.err.Error()) }
func (r redactErr) Unwrap() error { return r.err }

// Scrub implements nhisync.Scrubber: s without the password of any URL
// (the repository's may carry one).
func (c *Connector) Scrub(s string) string { return redactURL(s) }

// redactURL replaces the password of every URL in s with "xxxxx".
func redactURL(s string) string {
	out := s
	for i := 0; ; {
		j := strings.Index(out[i:], "://")
		if j < 0 {
			return out
		}
		start := i + j + 3
		end := start
		for end < len(out) && !strings.ContainsRune("/ \t\n\"'", rune(out[end])) {
			end++
		}
		host := out[start:end]
		if at := strings.LastIndex(host, "@"); at >= 0 {
			user := host[:at]
			if k := strings.Index(user, ":"); k >= 0 {
				user = user[:k] + ":xxxxx"
			} else {
				user = "xxxxx"
			}
			out = out[:start] + user + host[at:] + out[end:]
			end = start + len(user) + len(host) - at
		}
		i = end
	}
}

// Close releases nothing: the repository is read per call.
func (c *Connector) Close() error { return nil }

// Capabilities: reads are incremental by commit, writes conditional on
// the branch head (a compare-and-swap of the ref, or a push the remote
// refuses unless it fast-forwards).
func (c *Connector) Capabilities(context.Context) nhisync.Capabilities {
	note := "one commit per batch; the branch moves only if its head is the one checked (else the batch is checked again)"
	if c.remote || c.push != "" {
		note += "; a push that does not fast-forward is refused"
	}
	return nhisync.Capabilities{Incremental: true, IncrementalNote: "documents changed since the last commit read",
		ConditionalWrites: true, ConditionalNote: note}
}

// Check reports whether the branch can be read.
func (c *Connector) Check(ctx context.Context) error {
	_, err := c.head(ctx)
	return err
}
