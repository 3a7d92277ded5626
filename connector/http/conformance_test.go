package http_test

import (
	"fmt"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	_ "github.com/nhisync/nhisync/connector/http"
)

// harness keeps the suite's records in a fresh api per test, edited
// directly (as another client of the API would).
type harness struct {
	paging string
	apis   map[string]*api
}

func (h *harness) Features() conntest.Features { return conntest.Features{} }

func settings(a *api, paging string) nhisync.Settings {
	list := map[string]any{"path": "/accounts", "items": "data.items", "paging": paging}
	switch paging {
	case "page":
		list["size"] = 50
	case "cursor":
		list["next"] = "meta.next"
	}
	return nhisync.Settings{
		"url":    a.url(),
		"auth":   map[string]any{"token": apiToken},
		"list":   list,
		"cursor": map[string]any{"param": "updated_since", "field": "updated"},
	}
}

func (h *harness) Setup(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	a := newAPI(t, h.paging, true)
	for _, r := range recs {
		rec := map[string]any{}
		for k, v := range r {
			if s, ok := v.([]string); ok {
				l := make([]any, len(s))
				for i, e := range s {
					l[i] = e
				}
				v = l
			}
			if v != nil {
				rec[k] = v
			}
		}
		a.put(conntest.IDOf(sys, r), rec)
	}
	sys.Settings = settings(a, h.paging)
	h.apis[a.url()] = a
}

func (h *harness) api(sys *nhisync.System) *api { return h.apis[sys.Settings.String("url")] }

func (h *harness) Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any) {
	rec := h.api(sys).get(id)
	if rec == nil {
		t.Fatalf("Edit: no record %q", id)
	}
	for k, v := range native {
		if v == nil {
			delete(rec, k)
		} else {
			rec[k] = v
		}
	}
	h.api(sys).put(id, rec)
}

func (h *harness) Remove(t *testing.T, sys *nhisync.System, id string) { h.api(sys).remove(id) }

func (h *harness) Raw(t *testing.T, sys *nhisync.System, id string) map[string]any {
	rec := h.api(sys).get(id)
	if rec == nil {
		return nil
	}
	for k, v := range rec {
		if l, ok := v.([]any); ok {
			s := make([]string, len(l))
			for i, e := range l {
				s[i] = fmt.Sprint(e)
			}
			rec[k] = s
		}
	}
	return rec
}

func TestConformanceHTTP(t *testing.T) {
	conntest.Run(t, "http", &harness{paging: "page", apis: map[string]*api{}})
}
