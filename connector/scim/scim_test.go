package scim_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/scim"
	"github.com/nhisync/nhisync/connector/scim/scimtest"
)

const enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

func userKind() *nhisync.Kind {
	k := &nhisync.Kind{Name: "service_account", Match: []string{"name"}, Fields: map[string]*nhisync.Field{}}
	for _, f := range []*nhisync.Field{
		{Name: "name", Type: nhisync.TypeString, Required: true, Resolve: nhisync.ResolvePriority},
		{Name: "owner", Type: nhisync.TypeString, Resolve: nhisync.ResolvePriority},
		{Name: "manager", Type: nhisync.TypeString, Resolve: nhisync.ResolvePriority},
		{Name: "entitlements", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge},
		{Name: "emails", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge},
	} {
		k.Fields[f.Name] = f
		k.FieldNames = append(k.FieldNames, f.Name)
	}
	return k
}

// userSystem maps the IdP's own User attributes: userName, the
// enterprise extension's manager, entitlements and emails by value; the
// id is the SCIM id.
func userSystem(settings nhisync.Settings) *nhisync.System {
	sys := &nhisync.System{Name: "idp", Connector: "scim", Kind: "service_account", Direction: nhisync.DirBoth,
		Settings: nhisync.Settings{"url": srv.URL, "token": scimtest.Token}, Pos: "test:1"}
	for k, v := range settings {
		sys.Settings[k] = v
	}
	for _, m := range [][2]string{
		{"name", "userName"}, {"owner", "ownedby"},
		{"manager", `["` + enterprise + `"].manager.value`},
		{"entitlements", "entitlements"}, {"emails", "emails"},
	} {
		f := userKind().Fields[m[0]]
		sys.Fields = append(sys.Fields, &nhisync.Mapping{Field: m[0], Type: f.Type, Name: m[1], Direction: nhisync.DirBoth})
	}
	return sys
}

func open(t *testing.T, sys *nhisync.System) *scim.Connector {
	t.Helper()
	if err := scim.Validate(sys, userKind()); err != nil {
		t.Fatal(err)
	}
	c, err := scim.New(sys, userKind())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func snapshot(t *testing.T, c *scim.Connector) map[string]nhisync.Observation {
	t.Helper()
	out := map[string]nhisync.Observation{}
	if err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
		o.Values = slices.Clone(o.Values)
		out[o.ID] = o
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func user(t *testing.T, name string) string {
	t.Helper()
	srv.Must(t, http.MethodPost, "/Users", map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterprise},
		"userName": name, "ownedby": "alice@example.com",
		"emails":       []map[string]any{{"value": "ops@example.com", "type": "work", "primary": true}},
		"entitlements": []map[string]any{{"value": "read", "type": "grant"}, {"value": "deploy"}},
		enterprise:     map[string]any{"manager": map[string]any{"value": "mgr-1"}},
		"title":        "unmapped stays",
	})
	return srv.Find(t, "userName", name)["id"].(string)
}

// TestSCIMEnterpriseAndMultiValued: an enterprise-extension path and
// multi-valued attributes read as sets of their values, and a PATCH
// changes only them: a kept element keeps its type and primary, a new one
// is {"value": …}, unmapped attributes stay.
func TestSCIMEnterpriseAndMultiValued(t *testing.T) {
	reset(t)
	id := user(t, "svc-billing")
	c := open(t, userSystem(nil))
	o := snapshot(t, c)[id]
	want := []nhisync.Value{nhisync.Str("svc-billing"), nhisync.Str("alice@example.com"), nhisync.Str("mgr-1"),
		nhisync.SetOf("deploy", "read"), nhisync.SetOf("ops@example.com")}
	for i, w := range want {
		if !o.Values[i].Equal(w) {
			t.Errorf("field %d = %v, want %v", i, o.Values[i], w)
		}
	}
	if o.Modified.IsZero() {
		t.Errorf("no modification time from meta.lastModified")
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: id, Changes: []nhisync.Change{
		{Field: "manager", Old: nhisync.Str("mgr-1"), New: nhisync.Str("mgr-2")},
		{Field: "entitlements", Old: nhisync.SetOf("deploy", "read"), New: nhisync.SetOf("read", "admin")},
		{Field: "owner", Old: nhisync.Str("alice@example.com"), New: nhisync.Value{}},
	}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("Apply: %v %+v", err, res)
	}
	raw := srv.Find(t, "userName", "svc-billing")
	if m := raw[enterprise].(map[string]any)["manager"].(map[string]any)["value"]; m != "mgr-2" {
		t.Errorf("manager %v, want mgr-2", m)
	}
	ents := raw["entitlements"].([]any)
	if len(ents) != 2 || ents[0].(map[string]any)["value"] != "read" || ents[0].(map[string]any)["type"] != "grant" ||
		ents[1].(map[string]any)["value"] != "admin" {
		t.Errorf("entitlements %v, want read (type kept) and admin", ents)
	}
	if _, ok := raw["ownedby"]; ok {
		t.Errorf("owner not removed: %v", raw["ownedby"])
	}
	if raw["title"] != "unmapped stays" || raw["emails"].([]any)[0].(map[string]any)["primary"] != true {
		t.Errorf("unmapped data changed: %v", raw)
	}
}

// TestSCIMIfMatchRefusesConcurrentChange: a change made between the
// connector's read and its PATCH fails the PATCH's If-Match (HTTP 412):
// the write is stale and the concurrent change stays.
func TestSCIMIfMatchRefusesConcurrentChange(t *testing.T) {
	reset(t)
	id := user(t, "svc-ci")
	c := open(t, userSystem(nil))
	srv.ChangeAfterRead(t, map[string]any{"ownedby": "concurrent@example.com"})
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: id, Changes: []nhisync.Change{
		{Field: "owner", Old: nhisync.Str("alice@example.com"), New: nhisync.Str("nhisync@example.com")},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nhisync.WriteStale {
		t.Fatalf("status %s (%v), want stale", res[0].Status, res[0].Err)
	}
	if got := srv.Find(t, "userName", "svc-ci")["ownedby"]; got != "concurrent@example.com" {
		t.Errorf("owner %v: the stale write overwrote the concurrent change", got)
	}
}

// TestSCIMProvisionWithBasicAuth: a create POSTs the mapped values
// (enterprise schema listed) with basic authentication.
func TestSCIMProvisionWithBasicAuth(t *testing.T) {
	reset(t)
	t.Setenv("SCIM_TEST_PW", scimtest.Password)
	sys := userSystem(nhisync.Settings{})
	delete(sys.Settings, "token")
	sys.Settings["username"] = scimtest.Username
	sys.Settings["password"] = "env:SCIM_TEST_PW"
	sys.Provision = true
	c := open(t, sys)
	res, err := c.Apply(t.Context(), []nhisync.Write{{Create: true, Changes: []nhisync.Change{
		{Field: "name", New: nhisync.Str("svc-new")}, {Field: "manager", New: nhisync.Str("mgr-9")},
		{Field: "entitlements", New: nhisync.SetOf("read")},
	}}})
	if err != nil || res[0].Status != nhisync.WriteApplied || res[0].ID == "" {
		t.Fatalf("create: %v %+v", err, res)
	}
	raw := srv.Find(t, "userName", "svc-new")
	if raw == nil || raw["id"] != res[0].ID {
		t.Fatalf("created resource %v, want id %s", raw, res[0].ID)
	}
	if m := raw[enterprise].(map[string]any)["manager"].(map[string]any)["value"]; m != "mgr-9" {
		t.Errorf("manager %v", m)
	}
	if e := raw["entitlements"].([]any)[0].(map[string]any)["value"]; e != "read" {
		t.Errorf("entitlements %v", raw["entitlements"])
	}
}

// TestSCIMIncrementalFallback: a server refusing filters on
// meta.lastModified gets a full read from Changes, and Capabilities says
// so; one that accepts them reads only what changed.
func TestSCIMIncrementalFallback(t *testing.T) {
	reset(t)
	a, b := user(t, "svc-a"), user(t, "svc-b")
	c := open(t, userSystem(nil))
	if err := c.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if caps := c.Capabilities(t.Context()); !caps.Incremental || !caps.ConditionalWrites || !strings.Contains(caps.ConditionalNote, "meta.version") {
		t.Errorf("capabilities %+v, want incremental and conditional", caps)
	}
	ids := func(c *scim.Connector, cursor string) ([]string, string) {
		var out []string
		next, err := c.Changes(t.Context(), cursor, func(o nhisync.Observation) error { out = append(out, o.ID); return nil })
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out, next
	}
	_, cur := ids(c, "")
	srv.Must(t, http.MethodPatch, "/Users/"+a, map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "ownedby", "value": "x@example.com"}}})
	// The cursor is the latest lastModified read (b's): b is read again
	// as the boundary record, a because it changed.
	if got, _ := ids(c, cur); !slices.Contains(got, a) || len(got) > 2 {
		t.Errorf("incremental read %v, want %s and at most the boundary record", got, a)
	}
	if got, _ := ids(c, srv.Find(t, "userName", "svc-a")["meta"].(map[string]any)["lastModified"].(string)); !slices.Equal(got, []string{a}) {
		t.Errorf("read since a's change: %v, want only %s", got, a)
	}
	srv.NoLastModifiedFilter(t)
	c2 := open(t, userSystem(nil))
	caps := c2.Capabilities(t.Context())
	if caps.Incremental || !strings.Contains(caps.IncrementalNote, "full read") {
		t.Errorf("capabilities %+v, want a full-read fallback named", caps)
	}
	got, next := ids(c2, "")
	want := []string{a, b}
	slices.Sort(want)
	if !slices.Equal(got, want) || next != "" {
		t.Errorf("fallback read %v cursor %q, want %v and no cursor", got, next, want)
	}
}

// TestSCIMUndecodableRecord: a resource whose mapped values cannot be
// decoded is emitted with its id and Malformed values (the engine
// quarantines it by system and id); the rest of the read goes on.
func TestSCIMUndecodableRecord(t *testing.T) {
	reset(t)
	t.Cleanup(func() { srv.ClearFaults(t) })
	good := user(t, "svc-good")
	srv.Raw(t, map[string]any{"id": "broken-1", "userName": map[string]any{"not": "text"},
		"entitlements": []any{map[string]any{"display": "no value"}}})
	got := snapshot(t, open(t, userSystem(nil)))
	if o := got[good]; o.Values[0].Text() != "svc-good" {
		t.Errorf("good record %v", o.Values)
	}
	o, ok := got["broken-1"]
	if !ok {
		t.Fatalf("the undecodable record was not reported by its id: %v", got)
	}
	if o.Values[0].Problem() == "" || o.Values[3].Problem() == "" {
		t.Errorf("undecodable values %v, want them Malformed", o.Values)
	}
}

// recordSleeps makes c's waits return at once and records them.
func recordSleeps(c *scim.Connector) *[]time.Duration {
	var mu sync.Mutex
	var waits []time.Duration
	c.Client().Sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return nil
	}
	return &waits
}

// TestSCIMRetriesHonourRetryAfter: 429 and 503 answers are tried again,
// waiting what Retry-After says, else a backoff.
func TestSCIMRetriesHonourRetryAfter(t *testing.T) {
	reset(t)
	t.Cleanup(func() { srv.ClearFaults(t) })
	user(t, "svc-r")
	c := open(t, userSystem(nil))
	waits := recordSleeps(c)
	srv.Fault(t, 429, 2, 3, 0)
	srv.Fault(t, 503, 1, -1, 0)
	if n := len(snapshot(t, c)); n != 1 {
		t.Fatalf("%d records after retries, want 1", n)
	}
	if len(*waits) != 3 || (*waits)[0] != 3*time.Second || (*waits)[1] != 3*time.Second || (*waits)[2] <= 0 || (*waits)[2] > time.Second {
		t.Errorf("waits %v, want 3s, 3s (Retry-After) and a short backoff", *waits)
	}
	// Past the retries, the read fails as unavailable.
	srv.Fault(t, 503, 10, 0, 0)
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	if nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("after retries: %v, want EUNAVAIL naming HTTP 503", err)
	}
}

// TestSCIMTimeout: a call without an answer within timeout fails, named.
func TestSCIMTimeout(t *testing.T) {
	reset(t)
	t.Cleanup(func() { srv.ClearFaults(t) })
	c := open(t, userSystem(nhisync.Settings{"timeout": "300ms", "retries": 0}))
	srv.Fault(t, 0, 1, -1, 2000)
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	if nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("Snapshot: %v, want EUNAVAIL naming the timeout", err)
	}
}

// TestSCIMRefusedCredentialsNoSecret: a wrong token or password fails
// with a clear message that holds neither.
func TestSCIMRefusedCredentialsNoSecret(t *testing.T) {
	reset(t)
	const badToken = "wrong-token-ab12cd"
	const badPassword = "wrong-password-zz99"
	for _, settings := range []nhisync.Settings{
		{"token": badToken},
		{"username": "nobody", "password": badPassword},
	} {
		sys := userSystem(nil)
		delete(sys.Settings, "token")
		for k, v := range settings {
			sys.Settings[k] = v
		}
		c := open(t, sys)
		for _, err := range []error{
			c.Check(t.Context()),
			c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil }),
		} {
			var e *nhisync.Error
			if !errors.As(err, &e) || e.Code != nhisync.EINVALID || !strings.Contains(err.Error(), "credentials") {
				t.Errorf("%v: want EINVALID saying the credentials were refused", err)
			}
			if err != nil && (strings.Contains(err.Error(), badToken) || strings.Contains(err.Error(), badPassword)) {
				t.Errorf("the error shows a secret: %v", err)
			}
		}
	}
}

// TestSCIMListMovingWhileRead: a resource deleted while the list is paged
// shifts the offsets; the read notices (totalResults moved) and reads
// again, so no resource that was there throughout is missed (it would be
// taken as vanished) and none is emitted twice.
func TestSCIMListMovingWhileRead(t *testing.T) {
	reset(t)
	t.Cleanup(func() { srv.ClearFaults(t) })
	var names []string
	for i := range 5 {
		names = append(names, "svc-"+string(rune('a'+i)))
		user(t, names[i])
	}
	c := open(t, userSystem(nhisync.Settings{"page_size": 2}))
	srv.DeleteFirstAfterNext(t)
	var got []string
	if err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
		if slices.Contains(got, o.Values[0].Text()) {
			t.Errorf("%s emitted twice", o.Values[0].Text())
		}
		got = append(got, o.Values[0].Text())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names[1:] {
		if !slices.Contains(got, n) {
			t.Errorf("%s was missed by a read while the list moved (got %v)", n, got)
		}
	}
}

// TestSCIMUnversionedResources: a server whose resources carry no
// meta.version cannot refuse a stale PATCH; Capabilities says so.
func TestSCIMUnversionedResources(t *testing.T) {
	reset(t)
	t.Cleanup(func() { srv.ClearFaults(t) })
	srv.Raw(t, map[string]any{"id": "no-version", "userName": "svc-plain"})
	c := open(t, userSystem(nil))
	if err := c.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if caps := c.Capabilities(t.Context()); caps.ConditionalWrites || !strings.Contains(caps.ConditionalNote, "can be overwritten") {
		t.Errorf("capabilities %+v, want no conditional writes, the window named", caps)
	}
}
