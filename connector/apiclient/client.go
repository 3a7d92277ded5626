// Package apiclient owns what the connectors that speak HTTP to an API
// (scim, opa) share: authentication from settings, a timeout on every
// call, retries with backoff that honour Retry-After, refused credentials
// turned into a clear error, and secrets kept out of every error text.
package apiclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// Setting names every API connector shares (beyond its own).
const (
	SettingTimeout = "timeout" // per call; default 30s
	SettingRetries = "retries" // retries of a call failing with 429/500/502/503/504 or a network error; default 4
)

// Defaults.
const (
	DefaultTimeout = 30 * time.Second
	DefaultRetries = 4
	// MaxBody bounds a response body read into memory (64 MiB): a larger
	// one fails the call rather than the process.
	MaxBody = 64 << 20
	// maxWait caps one wait between tries, whatever Retry-After asks.
	maxWait = 60 * time.Second
)

// Client calls one API on behalf of one system. It is safe for concurrent
// use.
type Client struct {
	// System names the system in errors.
	System string
	// Base is the API's base URL; Do resolves paths against it.
	Base *url.URL
	// Header is sent with every call (authentication included). Its
	// values are secrets: they never appear in an error.
	Header http.Header
	// Timeout bounds each try of a call.
	Timeout time.Duration
	// Retries is how many times a call is tried again after a 429, a 500,
	// 502, 503 or 504, or a network error (only 429 for a POST, which may
	// have been applied; a PATCH carries If-Match, so a retry of one that
	// was applied is stale, not applied twice).
	Retries int
	// Sleep waits d or until ctx ends (injected so tests do not wait).
	Sleep func(ctx context.Context, d time.Duration) error
	// HTTP is the client used (default: one with Timeout).
	HTTP *http.Client
	// Clock reads an HTTP-date Retry-After against now.
	Clock nhisync.Clock

	secrets []string
}

// Auth is a system's credentials: a bearer token, or a user name and
// password for basic authentication, or neither.
type Auth struct {
	Token    string
	Username string
	Password string
}

// Secret reads a credential setting. A value "env:VAR" is read from the
// environment and "file:PATH" from a file (relative to baseDir); any other
// value is taken as it is (a config writes ${VAR}, which config expands
// from the environment so the secret never sits in the file).
func Secret(sys *nhisync.System, key string) (string, error) {
	v := strings.TrimSpace(sys.Settings.String(key))
	kind, ref, _ := strings.Cut(v, ":")
	switch kind {
	case "env":
		s, ok := os.LookupEnv(ref)
		if ref == "" || !ok || s == "" {
			return "", Invalid(sys, "%s: the environment variable %s is not set", key, ref)
		}
		return s, nil
	case "file":
		p := ref
		if !filepath.IsAbs(p) {
			p = filepath.Join(sys.BaseDir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", Invalid(sys, "%s: the file %s cannot be read", key, p)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", Invalid(sys, "%s: the file %s is empty", key, p)
		}
		return s, nil
	}
	return v, nil
}

// Invalid returns an EINVALID error naming the system and its config
// position.
func Invalid(sys *nhisync.System, format string, args ...any) *nhisync.Error {
	pos := ""
	if sys.Pos != "" {
		pos = sys.Pos + ": "
	}
	return &nhisync.Error{Code: nhisync.EINVALID, Message: pos + "system " + sys.Name + ": " + fmt.Sprintf(format, args...)}
}

// New returns a client for base with auth and the timeout and retries
// settings of sys (validated: a bad value is EINVALID).
func New(sys *nhisync.System, base *url.URL, auth Auth) (*Client, error) {
	c := &Client{System: sys.Name, Base: base, Header: http.Header{}, Timeout: DefaultTimeout, Retries: DefaultRetries, Sleep: sleep, Clock: nhisync.SystemClock{}}
	if s := sys.Settings.String(SettingTimeout); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, Invalid(sys, "timeout %q is not a positive duration such as 10s", s)
		}
		c.Timeout = d
	}
	if _, ok := sys.Settings[SettingRetries]; ok {
		n := sys.Settings.Int(SettingRetries, -1)
		if n < 0 || n > 20 {
			return nil, Invalid(sys, "retries must be a whole number from 0 to 20")
		}
		c.Retries = n
	}
	switch {
	case auth.Token != "":
		c.Header.Set("Authorization", "Bearer "+auth.Token)
		c.secrets = append(c.secrets, auth.Token)
	case auth.Username != "":
		c.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(auth.Username+":"+auth.Password)))
		c.secrets = append(c.secrets, auth.Password, c.Header.Get("Authorization"))
	}
	c.HTTP = &http.Client{Timeout: c.Timeout}
	return c, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Response is an answer the API gave (any status).
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) error {
	d := json.NewDecoder(bytes.NewReader(r.Body))
	d.UseNumber()
	return d.Decode(v)
}

// Request is one call.
type Request struct {
	Method string
	// Path is resolved against Base (a path relative to it, with its
	// query if any).
	Path   string
	Query  url.Values
	Header http.Header
	// Body is marshalled as JSON unless it is []byte.
	Body        any
	ContentType string
}

// Do makes the call, trying again after 429, 500, 502, 503, 504 and
// network errors with exponential backoff (Retry-After honoured, capped at a
// minute). It returns the response for every other status; a 401 or 403
// is *nhisync.Error EINVALID saying the credentials were refused, and a
// call that keeps failing EUNAVAIL. No error text holds a credential.
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	u := c.Base.JoinPath(r.Path)
	if i := strings.IndexByte(r.Path, '?'); i >= 0 {
		u = c.Base.JoinPath(r.Path[:i])
		u.RawQuery = r.Path[i+1:]
	}
	if r.Query != nil {
		u.RawQuery = r.Query.Encode()
	}
	var body []byte
	switch b := r.Body.(type) {
	case nil:
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Message: "system " + c.System + ": encode request", Err: err}
		}
	}
	what := r.Method + " " + redactURL(u)
	var last error
	for try := 0; ; try++ {
		resp, wait, err := c.once(ctx, r, u, body)
		if err == nil && !retryable(resp.Status, r.Method) {
			switch resp.Status {
			case http.StatusUnauthorized, http.StatusForbidden:
				return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: fmt.Sprintf(
					"system %s: %s was refused with HTTP %d: the server does not accept the credentials (check token, or username and password)",
					c.System, what, resp.Status)}
			}
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			last = fmt.Errorf("%s", c.scrub(err.Error()))
		} else {
			last = fmt.Errorf("HTTP %d", resp.Status)
		}
		if try >= c.Retries {
			break
		}
		if wait == 0 {
			wait = backoff(try)
		}
		if err := c.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Err: last,
		Message: fmt.Sprintf("system %s: %s failed after %d tries: %v", c.System, what, c.Retries+1, last)}
}

func (c *Client) once(ctx context.Context, r Request, u *url.URL, body []byte) (*Response, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), rd)
	if err != nil {
		return nil, 0, err
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if body != nil {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named once by the caller
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s (timeout)", c.Timeout)
		}
		return nil, 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, MaxBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read the response: %w", err)
	}
	if len(b) > MaxBody {
		return nil, 0, fmt.Errorf("the response is larger than %d bytes", MaxBody)
	}
	return &Response{Status: res.StatusCode, Header: res.Header, Body: b}, retryAfter(res.Header.Get("Retry-After"), c.Clock.Now()), nil
}

// retryable reports whether a status is worth trying again. A POST is
// tried again only after 429, which says the request was not processed.
func retryable(status int, method string) bool {
	if status == http.StatusTooManyRequests {
		return true
	}
	if method == http.MethodPost {
		return false
	}
	return status == http.StatusInternalServerError || status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// backoff is 200ms doubled per try, with up to 20% jitter, capped.
func backoff(try int) time.Duration {
	d := 200 * time.Millisecond << min(try, 8)
	d += time.Duration(rand.Int64N(int64(d) / 5))
	return min(d, maxWait)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return max(min(d, maxWait), 0)
}

// scrub removes every secret from s.
func (c *Client) scrub(s string) string {
	for _, sec := range c.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// Scrub removes every credential of the client from s, for a connector's
// own error texts (a server may echo a request back).
func (c *Client) Scrub(s string) string { return c.scrub(s) }

// redactURL prints u without user info.
func redactURL(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

// Errorf returns an error of code about the system, credentials scrubbed.
func (c *Client) Errorf(code, format string, args ...any) *nhisync.Error {
	return &nhisync.Error{Code: code, Message: c.scrub("system " + c.System + ": " + fmt.Sprintf(format, args...))}
}

// Detail returns a short text of an error response's body (a SCIM or OPA
// error's detail or message when it has one), scrubbed.
func (c *Client) Detail(r *Response) string {
	var e struct {
		Detail  string `json:"detail"`
		Message string `json:"message"`
		Code    string `json:"code"`
	}
	s := ""
	if json.Unmarshal(r.Body, &e) == nil {
		s = strings.TrimSpace(e.Detail + " " + e.Message)
	}
	if s == "" {
		s = strings.TrimSpace(string(r.Body))
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return c.scrub(fmt.Sprintf("HTTP %d %s", r.Status, s))
}
