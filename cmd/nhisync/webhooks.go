package main

import (
	"net/http"
	"sort"
	"strings"

	"github.com/nhisync/nhisync"
)

// webhookReceiver is a connector that takes pushed changes (webhooks) on
// serve's address: the http connector with `webhook: {path, secret}`. It
// checks each call itself (signature, timestamp window, size) and hands
// valid ones to its Watch, which the service runs as the system's feed.
type webhookReceiver interface {
	WebhookPath() string
	http.Handler
}

// withWebhooks returns api with every system's webhook mounted at its
// path (POST only; everything else still reaches api). Two systems on one
// path, or a path under /api/, is an EINVALID error naming them.
func withWebhooks(api http.Handler, conns map[string]nhisync.Connector) (http.Handler, error) {
	names := make([]string, 0, len(conns))
	for name := range conns {
		names = append(names, name)
	}
	sort.Strings(names)
	mux := http.NewServeMux()
	taken := map[string]string{}
	for _, name := range names {
		wr, ok := conns[name].(webhookReceiver)
		if !ok || wr.WebhookPath() == "" {
			continue
		}
		p := wr.WebhookPath()
		if other, dup := taken[p]; dup {
			return nil, nhisync.Errorf(nhisync.EINVALID, "systems %s and %s both take webhooks at %s; give each its own webhook.path", other, name, p)
		}
		if strings.HasPrefix(p, "/api/") || strings.ContainsAny(p, "{} ") {
			return nil, nhisync.Errorf(nhisync.EINVALID, "system %s: webhook.path %s is not a path of its own; use e.g. /hooks/%s", name, p, name)
		}
		taken[p] = name
		mux.Handle("POST "+p, wr)
	}
	if len(taken) == 0 {
		return api, nil
	}
	mux.Handle("/", api)
	return mux, nil
}
