package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const apiToken = "test-token-0123456789"

// api is a small real JSON REST API: a collection of records with
// versions (ETags), three paging styles, merge-patch updates honouring
// If-Match, creates, an updated-since filter and injected faults.
type api struct {
	t      testing.TB
	srv    *httptest.Server
	paging string // page, cursor, link
	etags  bool

	mu      sync.Mutex
	order   []string
	recs    map[string]map[string]any
	version map[string]int
	clock   int
	newID   int
	// fail429 and fail503 make the next calls fail that many times;
	// calls counts requests by method.
	fail429, fail503 int
	calls            map[string]int
	// hook runs first on every call; true means it answered.
	hook func(w http.ResponseWriter, r *http.Request) bool
}

func (a *api) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	a.mu.Lock()
	a.hook = h
	a.mu.Unlock()
}

func newAPI(t testing.TB, paging string, etags bool) *api {
	a := &api{t: t, paging: paging, etags: etags, recs: map[string]map[string]any{}, version: map[string]int{}, calls: map[string]int{}}
	a.srv = httptest.NewServer(a)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *api) url() string { return a.srv.URL + "/v1" }

// put stores a record as someone other than nhisync would.
func (a *api) put(id string, rec map[string]any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.putLocked(id, rec)
}

func (a *api) putLocked(id string, rec map[string]any) {
	if _, ok := a.recs[id]; !ok {
		a.order = append(a.order, id)
	}
	a.clock++
	rec["updated"] = fmt.Sprintf("%09d", a.clock)
	a.recs[id] = rec
	a.version[id]++
}

func (a *api) remove(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.recs, id)
	a.order = slices.DeleteFunc(a.order, func(s string) bool { return s == id })
}

func (a *api) get(id string) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.recs[id]
	if r == nil {
		return nil
	}
	out := map[string]any{}
	for k, v := range r {
		out[k] = v
	}
	return out
}

func (a *api) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	h := a.hook
	a.mu.Unlock()
	if h != nil && h(w, r) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls[r.Method]++
	if r.Header.Get("Authorization") != "Bearer "+apiToken {
		a.reply(w, http.StatusUnauthorized, map[string]string{"message": "bad token"})
		return
	}
	if a.fail429 > 0 {
		a.fail429--
		w.Header().Set("Retry-After", "0")
		a.reply(w, http.StatusTooManyRequests, map[string]string{"message": "slow down"})
		return
	}
	if a.fail503 > 0 {
		a.fail503--
		a.reply(w, http.StatusServiceUnavailable, map[string]string{"message": "busy"})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/accounts")
	if !ok {
		a.reply(w, http.StatusNotFound, map[string]string{"message": "no route"})
		return
	}
	id := strings.TrimPrefix(rest, "/")
	switch {
	case id == "" && r.Method == http.MethodGet:
		a.list(w, r)
	case id == "" && r.Method == http.MethodPost:
		var rec map[string]any
		if json.NewDecoder(r.Body).Decode(&rec) != nil {
			a.reply(w, http.StatusBadRequest, map[string]string{"message": "not JSON"})
			return
		}
		a.newID++
		nid := fmt.Sprintf("new-%d", a.newID)
		rec["sysid"] = nid
		a.putLocked(nid, rec)
		a.reply(w, http.StatusCreated, rec)
	case r.Method == http.MethodGet:
		rec := a.recs[id]
		if rec == nil {
			a.reply(w, http.StatusNotFound, map[string]string{"message": "no such record"})
			return
		}
		if a.etags {
			w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, a.version[id]))
		}
		a.reply(w, http.StatusOK, rec)
	case r.Method == http.MethodPatch:
		rec := a.recs[id]
		if rec == nil {
			a.reply(w, http.StatusNotFound, map[string]string{"message": "no such record"})
			return
		}
		if m := r.Header.Get("If-Match"); a.etags && m != "" && m != fmt.Sprintf(`W/"%d"`, a.version[id]) {
			a.reply(w, http.StatusPreconditionFailed, map[string]string{"message": "changed since"})
			return
		}
		var patch map[string]any
		if json.NewDecoder(r.Body).Decode(&patch) != nil {
			a.reply(w, http.StatusBadRequest, map[string]string{"message": "not JSON"})
			return
		}
		for k, v := range patch {
			if v == nil {
				delete(rec, k)
			} else {
				rec[k] = v
			}
		}
		a.putLocked(id, rec)
		a.reply(w, http.StatusOK, rec)
	default:
		a.reply(w, http.StatusMethodNotAllowed, map[string]string{"message": "no"})
	}
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var ids []string
	for _, id := range a.order {
		if since := q.Get("updated_since"); since != "" && a.recs[id]["updated"].(string) < since {
			continue
		}
		ids = append(ids, id)
	}
	size, _ := strconv.Atoi(q.Get("per_page"))
	if size <= 0 {
		size = 5
	}
	start := 0
	switch a.paging {
	case "page":
		p, _ := strconv.Atoi(q.Get("page"))
		start = (max(p, 1) - 1) * size
	default:
		start, _ = strconv.Atoi(q.Get("cursor"))
	}
	end := min(start+size, len(ids))
	start = min(start, end)
	items := []any{}
	for _, id := range ids[start:end] {
		items = append(items, a.recs[id])
	}
	body := map[string]any{"data": map[string]any{"items": items}}
	if end < len(ids) {
		next := *r.URL
		nq := next.Query()
		nq.Set("cursor", strconv.Itoa(end))
		next.RawQuery = nq.Encode()
		switch a.paging {
		case "cursor":
			body["meta"] = map[string]any{"next": strconv.Itoa(end)}
		case "link":
			w.Header().Add("Link", fmt.Sprintf(`<%s%s>; rel="next", <%s/v1/accounts>; rel="first"`, a.srv.URL, next.RequestURI(), a.srv.URL))
		}
	}
	a.reply(w, http.StatusOK, body)
}
