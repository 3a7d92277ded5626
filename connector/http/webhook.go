package http

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/apiclient"
	"github.com/nhisync/nhisync/connector/native"
)

// Webhook request headers. The signature is
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + raw body)), the
// timestamp Unix seconds (as Stripe and Slack sign theirs).
const (
	HeaderTimestamp = "X-Nhisync-Timestamp"
	HeaderSignature = "X-Nhisync-Signature"
)

// Webhook defaults.
const (
	DefaultTolerance = 5 * time.Minute
	DefaultHookBytes = 1 << 20
)

type hookCfg struct {
	path      string
	secret    []byte
	ids       native.Path
	tolerance time.Duration
	maxBytes  int64
}

// hookState is what the webhook handler hands to Watch.
type hookState struct {
	hmu     sync.Mutex
	notify  chan struct{}
	pending []string
	all     bool
	// seen holds the signatures received within the window (replays are
	// refused), by when they expire.
	seen map[string]time.Time
}

func (c *Connector) configureHook() error {
	hs, ok, err := sub(c.sys.Settings, SettingWebhook)
	if err != nil {
		return fmt.Errorf("webhook must be a mapping: webhook: {path: /hooks/catalog, secret: ${HOOK_SECRET}}")
	}
	if !ok {
		return nil
	}
	if err := only(hs, "webhook", "path", "secret", "ids", "tolerance", "max_bytes"); err != nil {
		return err
	}
	h := &hookCfg{path: strings.TrimSpace(hs.String("path")), tolerance: DefaultTolerance, maxBytes: DefaultHookBytes}
	if !strings.HasPrefix(h.path, "/") || h.path == "/" || strings.HasPrefix(h.path, "/api/") || strings.ContainsAny(h.path, " {}") {
		return fmt.Errorf("webhook.path %q: give a path of its own on serve's address, such as /hooks/catalog", h.path)
	}
	ws := &nhisync.System{Name: c.sys.Name, Pos: c.sys.Pos, BaseDir: c.sys.BaseDir, Settings: hs}
	secret, err := apiclient.Secret(ws, "secret")
	if err != nil {
		return fmt.Errorf("webhook.%s", strings.TrimPrefix(nhisync.ErrorMessage(err), c.sys.Pos+": system "+c.sys.Name+": "))
	}
	if len(secret) < 16 {
		return fmt.Errorf("webhook.secret must be at least 16 characters (from the environment: secret: ${HOOK_SECRET})")
	}
	h.secret = []byte(secret)
	ids := hs.String("ids")
	if ids == "" {
		ids = "ids"
	}
	if h.ids, err = native.ParsePath(ids); err != nil {
		return fmt.Errorf("webhook.ids: %s", nhisync.ErrorMessage(err))
	}
	if t := hs.String("tolerance"); t != "" {
		if h.tolerance, err = time.ParseDuration(t); err != nil || h.tolerance <= 0 || h.tolerance > time.Hour {
			return fmt.Errorf("webhook.tolerance %q: a duration up to 1h, such as 5m", t)
		}
	}
	if _, ok := hs["max_bytes"]; ok {
		n := hs.Int("max_bytes", -1)
		if n < 1 || n > 64<<20 {
			return fmt.Errorf("webhook.max_bytes must be a whole number of bytes from 1 to 67108864")
		}
		h.maxBytes = int64(n)
	}
	c.hook = h
	c.notify = make(chan struct{}, 1)
	c.seen = map[string]time.Time{}
	return nil
}

// HookConnector is a Connector with a webhook (`webhook: {path,
// secret}`): `nhisync serve` mounts it at WebhookPath, and the service runs
// its Watch as the system's feed. HookCursorConnector is one that also
// reads by cursor. Systems without a webhook are not Watchers: the service
// polls them.
type HookConnector struct{ *Connector }

// HookCursorConnector is a CursorConnector with a webhook.
type HookCursorConnector struct{ *CursorConnector }

var (
	_ nhisync.Watcher = HookConnector{}
	_ nethttp.Handler = HookConnector{}
	_ nhisync.Watcher = HookCursorConnector{}
	_ nethttp.Handler = HookCursorConnector{}
	_ nhisync.Changer = HookCursorConnector{}
)

// WebhookPath is the path `nhisync serve` mounts the webhook at.
func (h HookConnector) WebhookPath() string { return h.webhookPath() }

// Watch: see (*Connector).watch.
func (h HookConnector) Watch(ctx context.Context, changed func(ids []string)) error {
	return h.watch(ctx, changed)
}

// ServeHTTP: see (*Connector).serveWebhook.
func (h HookConnector) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) { h.serveWebhook(w, r) }

// WebhookPath is the path `nhisync serve` mounts the webhook at.
func (h HookCursorConnector) WebhookPath() string { return h.webhookPath() }

// Watch: see (*Connector).watch.
func (h HookCursorConnector) Watch(ctx context.Context, changed func(ids []string)) error {
	return h.watch(ctx, changed)
}

// ServeHTTP: see (*Connector).serveWebhook.
func (h HookCursorConnector) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	h.serveWebhook(w, r)
}

// webhookPath is the path of the system's webhook ("" when it has none).
func (c *Connector) webhookPath() string {
	if c.hook == nil {
		return ""
	}
	return c.hook.path
}

// watch hands the changes webhooks announce to the service: the ids the
// body names (webhook.ids), or nil (read the system) when it names none.
// Without a webhook setting it returns EUNAVAIL at once.
func (c *Connector) watch(ctx context.Context, changed func(ids []string)) error {
	if c.hook == nil {
		return c.errorf(nhisync.EUNAVAIL, "no webhook is set; the system is polled")
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.notify:
			c.hmu.Lock()
			ids, all := c.pending, c.all
			c.pending, c.all = nil, false
			c.hmu.Unlock()
			if all {
				ids = nil
			}
			changed(ids)
		}
	}
}

func (c *Connector) signal(ids []string) {
	c.hmu.Lock()
	if ids == nil {
		c.all = true
	}
	c.pending = append(c.pending, ids...)
	c.hmu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// serveWebhook takes one webhook call. It answers 202 after a valid call;
// 405 for a method other than POST; 400 for a body over max_bytes, a
// missing or malformed timestamp, one outside the tolerance window, a
// replayed signature or a body that is not JSON; 401 for a missing or
// wrong signature. Only a 202 changes anything. No answer or error holds
// the secret.
func (c *Connector) serveWebhook(w nethttp.ResponseWriter, r *nethttp.Request) {
	refuse := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": msg}})
	}
	if c.hook == nil {
		refuse(nethttp.StatusNotFound, "no webhook here")
		return
	}
	if r.Method != nethttp.MethodPost {
		w.Header().Set("Allow", nethttp.MethodPost)
		refuse(nethttp.StatusMethodNotAllowed, "webhooks are POSTed")
		return
	}
	h := c.hook
	tooBig := fmt.Sprintf("the body is over %d bytes (webhook.max_bytes)", h.maxBytes)
	if r.ContentLength > h.maxBytes {
		refuse(nethttp.StatusBadRequest, tooBig)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxBytes+1))
	if err != nil {
		refuse(nethttp.StatusBadRequest, "the body could not be read")
		return
	}
	if int64(len(body)) > h.maxBytes {
		refuse(nethttp.StatusBadRequest, tooBig)
		return
	}
	ts := r.Header.Get(HeaderTimestamp)
	secs, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		refuse(nethttp.StatusBadRequest, "missing or malformed "+HeaderTimestamp+" (Unix seconds)")
		return
	}
	now := c.Now()
	if d := now.Sub(time.Unix(secs, 0)); d > h.tolerance || d < -h.tolerance {
		refuse(nethttp.StatusBadRequest, fmt.Sprintf("the timestamp is outside the %s window (a replay, or a clock off)", h.tolerance))
		return
	}
	sig := strings.TrimPrefix(strings.TrimSpace(r.Header.Get(HeaderSignature)), "sha256=")
	got, err := hex.DecodeString(sig)
	mac := hmac.New(sha256.New, h.secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		refuse(nethttp.StatusUnauthorized, "missing or wrong "+HeaderSignature)
		return
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		refuse(nethttp.StatusBadRequest, "the body is not JSON")
		return
	}
	c.hmu.Lock()
	for k, exp := range c.seen {
		if now.After(exp) {
			delete(c.seen, k)
		}
	}
	_, replay := c.seen[sig]
	if !replay {
		c.seen[sig] = now.Add(2 * h.tolerance)
	}
	c.hmu.Unlock()
	if replay {
		refuse(nethttp.StatusBadRequest, "this call was received already (a replay)")
		return
	}
	var ids []string
	if m, ok := doc.(map[string]any); ok {
		switch v, _ := h.ids.Get(m); v := v.(type) {
		case string:
			ids = []string{v}
		case []any:
			for _, e := range v {
				if s, ok := native.Text(e); ok && s != "" {
					ids = append(ids, s)
				}
			}
		}
	}
	c.signal(ids)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(nethttp.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"accepted": true, "ids": len(ids)})
}

// Sign returns the signature header value for a webhook body sent at ts
// (Unix seconds), for senders and tests.
func Sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
