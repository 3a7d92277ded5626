package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

var roleTokens = map[nhisync.Role]string{
	nhisync.RoleViewer: "vera", nhisync.RoleSteward: "stan", nhisync.RoleApprover: "ana", nhisync.RoleAdmin: "adam",
}

// examplePath fills a documented path's parameters with values that
// exist in the fixture (items: an ID that does not, so the matrix changes
// nothing).
func examplePath(p string) string {
	return strings.NewReplacer(
		"{kind}", "service_account", "{key}", "aws/bot-001", "{field}", "owner",
		"{id}", "999999", "{name}", "orphans", "{seq}", "1",
	).Replace(p)
}

func exampleBody(op string) string {
	if op == "resolveConflict" {
		return `{"pick": "cmdb"}`
	}
	return ""
}

// TestDocument: the served document is valid OpenAPI 3, and the server's
// routes are exactly its operations (New refuses a mismatch; here every
// documented route answers from its handler, never the mux's 404/405).
func TestDocument(t *testing.T) {
	f := newFixture(t, 4)
	r := f.do(t, "", "GET", "/api/v1/openapi.json", "")
	if r.status != http.StatusOK {
		t.Fatalf("openapi.json: %d", r.status)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(r.body)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = true
			if op.Extensions["x-nhisync-role"] == nil {
				t.Errorf("%s %s has no x-nhisync-role", method, path)
			}
		}
	}
	ops := f.srv.Operations()
	if len(ops) != len(documented) {
		t.Errorf("the server routes %d operations, the document has %d", len(ops), len(documented))
	}
	// SPEC §7's table, method and path: each must be documented.
	for _, want := range []string{
		"GET /api/v1/records", "GET /api/v1/records/{kind}/{key}", "GET /api/v1/records/{kind}/{key}/history",
		"GET /api/v1/records/{kind}/{key}/explain/{field}", "GET /api/v1/conflicts", "GET /api/v1/quarantine",
		"GET /api/v1/approvals", "POST /api/v1/conflicts/{id}/resolve", "POST /api/v1/quarantine/{id}/dismiss",
		"POST /api/v1/approvals/{id}/approve", "POST /api/v1/approvals/{id}/reject", "GET /api/v1/reports/{name}",
		"GET /api/v1/systems", "POST /api/v1/sync", "GET /api/v1/audit/checkpoint", "GET /api/v1/audit/proof/{seq}",
	} {
		if !documented[want] {
			t.Errorf("SPEC §7 route %s is not in the document", want)
		}
	}
	for _, op := range ops {
		if !documented[op.Method+" "+op.Path] {
			t.Errorf("route %s %s is not documented", op.Method, op.Path)
		}
		r := f.do(t, "adam", op.Method, examplePath(op.Path), exampleBody(op.ID))
		if r.status == http.StatusMethodNotAllowed || strings.Contains(string(r.body), "no API route") {
			t.Errorf("%s %s (%s): answered by the mux, not its handler: %d %s", op.Method, op.Path, op.ID, r.status, r.body)
		}
		// Every answer is documented: its status, and its body's schema.
		checkAnswer(t, doc, op.Method, op.Path, r)
		checkAnswer(t, doc, op.Method, op.Path, f.do(t, "", op.Method, examplePath(op.Path), exampleBody(op.ID)))
	}
	if r := f.do(t, "adam", "GET", "/api/v1/nothing", ""); r.status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Errorf("unknown API path: %d %s", r.status, r.body)
	}
}

// TestRoles: every route × every role: allowed, or 403 in the error shape;
// 401 without a token or with an unknown one.
func TestRoles(t *testing.T) {
	f := newFixture(t, 4)
	for _, op := range f.srv.Operations() {
		path := examplePath(op.Path)
		for _, role := range nhisync.Roles {
			r := f.do(t, roleTokens[role], op.Method, path, exampleBody(op.ID))
			if role.Includes(op.Role) {
				if r.status == http.StatusForbidden || r.status == http.StatusUnauthorized {
					t.Errorf("%s as %s (needs %s): %d %s", op.ID, role, op.Role, r.status, r.body)
				}
			} else if r.status != http.StatusForbidden || r.errorCode() != nhisync.EFORBIDDEN {
				t.Errorf("%s as %s (needs %s): %d %s, want 403 forbidden", op.ID, role, op.Role, r.status, r.body)
			}
		}
		if r := f.do(t, "", op.Method, path, exampleBody(op.ID)); r.status != http.StatusUnauthorized || r.errorCode() != "unauthorized" {
			t.Errorf("%s without a token: %d %s, want 401", op.ID, r.status, r.body)
		}
		f.tokens["mallory"] = "nhs_not-a-token"
		if r := f.do(t, "mallory", op.Method, path, exampleBody(op.ID)); r.status != http.StatusUnauthorized {
			t.Errorf("%s with an unknown token: %d, want 401", op.ID, r.status)
		}
	}
	// A revoked token stops working at once.
	if err := f.store.RevokeToken(t.Context(), "vera"); err != nil {
		t.Fatal(err)
	}
	if r := f.do(t, "vera", "GET", "/api/v1/records", ""); r.status != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", r.status)
	}
}

// TestDecisions: the human actions through the API are the CLI's, with
// the token's name as the actor: resolve (then 409), separation of
// duties (403), approve by another approver (the write lands), reject,
// dismiss.
func TestDecisions(t *testing.T) {
	f := newFixture(t, 6)
	conflicts := f.items(t, "conflicts", "open")
	if len(conflicts) != 3 {
		t.Fatalf("fixture: %d open conflicts, want 3", len(conflicts))
	}
	id := int64(conflicts[0]["id"].(float64))
	var c nhisync.Conflict
	f.ok(t, "ana", "POST", fmt.Sprintf("/api/v1/conflicts/%d/resolve", id), `{"value": "ana-picked@example.com"}`, &c)
	if c.Status != nhisync.StatusResolved || c.ResolvedBy != "ana" {
		t.Errorf("resolved conflict = %+v, want resolved by ana", c)
	}
	r := f.do(t, "ana", "POST", fmt.Sprintf("/api/v1/conflicts/%d/resolve", id), `{"pick": "cmdb"}`)
	if r.status != http.StatusConflict || r.errorCode() != nhisync.ECONFLICT {
		t.Errorf("resolving again: %d %s, want 409", r.status, r.body)
	}
	// The person's value went to cmdb and catalog at once (drained)…
	if b, _ := os.ReadFile(filepath.Join(f.dir, "cmdb.csv")); !strings.Contains(string(b), "ana-picked@example.com") {
		t.Errorf("cmdb.csv does not hold the resolved value:\n%s", b)
	}
	// …and its write to policy waits for an approver other than ana.
	var held map[string]any
	for _, a := range f.items(t, "approvals", "pending") {
		if a["requested_by"] == "person:ana" {
			held = a
		}
	}
	if held == nil {
		t.Fatalf("no approval requested by person:ana among %v", f.items(t, "approvals", "pending"))
	}
	aid := int64(held["id"].(float64))
	r = f.do(t, "ana", "POST", fmt.Sprintf("/api/v1/approvals/%d/approve", aid), "")
	if r.status != http.StatusForbidden || r.errorCode() != nhisync.EFORBIDDEN || !strings.Contains(string(r.body), "separation of duties") {
		t.Errorf("ana approving her own change: %d %s, want 403 separation of duties", r.status, r.body)
	}
	var ap nhisync.Approval
	f.ok(t, "bob", "POST", fmt.Sprintf("/api/v1/approvals/%d/approve", aid), "", &ap)
	if ap.Status != nhisync.StatusApproved || ap.DecidedBy != "bob" {
		t.Errorf("approval = %+v, want approved by bob", ap)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dir, "policy.csv")); !strings.Contains(string(b), "ana-picked@example.com") {
		t.Errorf("policy.csv does not hold the approved write:\n%s", b)
	}
	// The approved write counts as applied, and its propagation time
	// (from the decision's change to its write confirmed) is observed.
	metrics := string(f.do(t, "", "GET", "/metrics", "").body)
	if !regexp.MustCompile(`(?m)^nhisync_propagation_seconds_count [1-9]`).MatchString(metrics) ||
		!regexp.MustCompile(`(?m)^nhisync_writes_total\{result="applied",system="policy"\} [1-9]`).MatchString(metrics) {
		t.Errorf("/metrics after an approved write:\n%s", grepLines(metrics, "nhisync_propagation_seconds_count", "nhisync_writes_total"))
	}
	if r := f.do(t, "bob", "POST", fmt.Sprintf("/api/v1/approvals/%d/reject", aid), ""); r.status != http.StatusConflict {
		t.Errorf("rejecting a decided approval: %d, want 409", r.status)
	}

	// Reject another one.
	pending := f.items(t, "approvals", "pending")
	rid := int64(pending[0]["id"].(float64))
	f.ok(t, "bob", "POST", fmt.Sprintf("/api/v1/approvals/%d/reject", rid), "{}", &ap)
	if ap.Status != nhisync.StatusRejected {
		t.Errorf("rejected approval = %+v", ap)
	}

	// Dismiss the quarantine item.
	var qid int64
	for _, q := range f.items(t, "quarantine", "open") {
		if q["field"] == "note" {
			qid = int64(q["id"].(float64))
		}
	}
	if qid == 0 {
		t.Fatal("fixture: no open quarantine item about note")
	}
	var qi nhisync.QuarantineItem
	f.ok(t, "stan", "POST", fmt.Sprintf("/api/v1/quarantine/%d/dismiss", qid), "", &qi)
	if qi.Status != nhisync.StatusDismissed || qi.ClosedBy != "stan" {
		t.Errorf("dismissed item = %+v", qi)
	}
	if r := f.do(t, "stan", "POST", fmt.Sprintf("/api/v1/quarantine/%d/dismiss", qid), ""); r.status != http.StatusConflict {
		t.Errorf("dismissing again: %d, want 409", r.status)
	}
	if r := f.do(t, "stan", "POST", "/api/v1/quarantine/424242/dismiss", ""); r.status != http.StatusNotFound {
		t.Errorf("dismissing an unknown item: %d, want 404", r.status)
	}

	// The audit log names the token holders.
	var hist []nhisync.AuditEntry
	f.ok(t, "vera", "GET", "/api/v1/records/service_account/"+c.Record+"/history", "", &hist)
	var actors []string
	for _, e := range hist {
		if e.Action == nhisync.ActConflictResolved || e.Action == nhisync.ActApprovalGranted {
			actors = append(actors, e.Action+"="+e.Actor)
		}
	}
	if got := strings.Join(actors, " "); got != "conflict.resolved=person:ana approval.granted=person:bob" {
		t.Errorf("history actors: %s", got)
	}
	open := f.items(t, "conflicts", "open")
	if len(open) != 2 {
		t.Errorf("%d open conflicts after resolving one, want 2", len(open))
	}
}

// TestBadRequests: oversized, malformed and ill-formed input is a 400 in
// the error shape, and nothing is decided.
func TestBadRequests(t *testing.T) {
	f := newFixture(t, 4)
	id := int64(f.items(t, "conflicts", "open")[0]["id"].(float64))
	path := fmt.Sprintf("/api/v1/conflicts/%d/resolve", id)
	for name, body := range map[string]string{
		"oversized":      `{"value": "` + strings.Repeat("x", 70<<10) + `"}`,
		"malformed":      `{"pick": `,
		"not an object":  `["cmdb"]`,
		"both":           `{"pick": "cmdb", "value": "x"}`,
		"neither":        `{}`,
		"unknown key":    `{"pik": "cmdb"}`,
		"two values":     `{"pick": "cmdb"} {"pick": "catalog"}`,
		"empty":          ``,
		"no such system": `{"pick": "idp"}`,
	} {
		r := f.do(t, "stan", "POST", path, body)
		if r.status != http.StatusBadRequest || r.errorCode() != nhisync.EINVALID {
			t.Errorf("%s body: %d %s, want 400 invalid", name, r.status, r.body)
		}
	}
	for _, p := range []string{
		"/api/v1/records?limit=0", "/api/v1/records?limit=5000", "/api/v1/records?after=x",
		"/api/v1/records?where=owner%20%3D%3D", "/api/v1/records?where=nosuchfield%20%3D%3D%201",
		"/api/v1/records?kind=nope", "/api/v1/conflicts?status=weird", "/api/v1/records/service_account/aws",
		"/api/v1/audit/proof/zero", "/api/v1/conflicts/abc/resolve",
	} {
		method := "GET"
		if strings.HasSuffix(p, "/resolve") {
			method = "POST"
		}
		r := f.do(t, "stan", method, p, `{"pick":"cmdb"}`)
		if r.status != http.StatusBadRequest || r.errorCode() != nhisync.EINVALID {
			t.Errorf("%s %s: %d %s, want 400 invalid", method, p, r.status, r.body)
		}
	}
	if r := f.do(t, "stan", "POST", fmt.Sprintf("/api/v1/approvals/%d/reject", id), "not json"); r.status != http.StatusForbidden {
		t.Errorf("steward rejecting: %d, want 403 (role first)", r.status)
	}
	if r := f.do(t, "ana", "POST", "/api/v1/approvals/1/reject", "not json"); r.status != http.StatusBadRequest {
		t.Errorf("reject with a body: %d, want 400", r.status)
	}
	if got := f.items(t, "conflicts", "open"); len(got) != 3 {
		t.Errorf("bad requests changed the queue: %d open conflicts", len(got))
	}
}

// TestRecords: look-ups, where filters, 404s, sensitive values withheld,
// explain, and keyset pages that stay stable while records are added.
func TestRecords(t *testing.T) {
	f := newFixture(t, 23)
	var rec map[string]any
	f.ok(t, "vera", "GET", "/api/v1/records/service_account/aws/bot-005", "", &rec)
	fields := rec["fields"].(map[string]any)
	if rec["key"] != "aws/bot-005" || fields["owner"].(map[string]any)["value"] != "team-005@example.com" {
		t.Errorf("record = %v", rec)
	}
	if h := fields["secret_hint"].(map[string]any); h["value"] != nil || h["sensitive"] != true {
		t.Errorf("a sensitive field's value is shown: %v", h)
	}
	if links := rec["links"].(map[string]any); len(links) != 2 || links["cmdb"] != "aws/bot-005" {
		t.Errorf("links = %v", links)
	}
	if r := f.do(t, "vera", "GET", "/api/v1/records/service_account/aws/nobody", ""); r.status != http.StatusNotFound || r.errorCode() != nhisync.ENOTFOUND {
		t.Errorf("unknown record: %d %s", r.status, r.body)
	}
	// Case and spacing of the key do not matter, as for `show`.
	f.ok(t, "vera", "GET", "/api/v1/records/service_account/AWS/Bot-005", "", nil)
	var x engine.Explanation
	f.ok(t, "vera", "GET", "/api/v1/records/service_account/aws/bot-000/explain/owner", "", &x)
	if x.Conflict == nil || len(x.Assertions) != 3 {
		t.Errorf("explain owner of bot-000: conflict %v, %d assertions", x.Conflict, len(x.Assertions))
	}
	if r := f.do(t, "vera", "GET", "/api/v1/records/service_account/aws/bot-000/explain/colour", ""); r.status != http.StatusBadRequest {
		t.Errorf("explain unknown field: %d", r.status)
	}

	var page struct {
		Items []map[string]any `json:"items"`
		Next  string           `json:"next"`
	}
	// The filter reads note, which only service accounts have: it applies
	// to them (another kind in the config does not make it a 400).
	f.ok(t, "vera", "GET", `/api/v1/records?where=note%20!%3D%20%22ok%22`, "", &page)
	if len(page.Items) != 1 || page.Items[0]["key"] != "aws/bot-003" || page.Next != "" {
		t.Errorf("where note != \"ok\": %v next %q", page.Items, page.Next)
	}

	// Page through with limit 4 while new records arrive between pages:
	// every record present at the start is seen exactly once, in order.
	seen := map[string]int{}
	var order []float64
	after := ""
	for i := 0; ; i++ {
		f.ok(t, "vera", "GET", "/api/v1/records?kind=service_account&limit=4&after="+after, "", &page)
		for _, it := range page.Items {
			seen[it["key"].(string)]++
			order = append(order, it["id"].(float64))
		}
		if page.Next == "" {
			break
		}
		after = page.Next
		if i < 3 {
			f.addRecord(t, fmt.Sprintf("late-%d", i))
		}
	}
	for i := range 23 {
		if k := "aws/bot-" + pad3(i); seen[k] != 1 {
			t.Errorf("%s seen %d times while paging", k, seen[k])
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s seen %d times", k, n)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("pages are not in ID order: %v", order)
		}
	}
}

// addRecord adds a cmdb row and runs a pass, as a change arriving while a
// client pages.
func (f *fixture) addRecord(t *testing.T, name string) {
	t.Helper()
	path := filepath.Join(f.dir, "cmdb.csv")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, string(b)+name+",aws,late@example.com,ok,\n")
	if _, err := f.engine.Sync(t.Context(), engine.PassOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestServiceEndpoints: health, readiness and metrics need no token;
// systems, checkpoint, proof and sync answer as documented.
func TestServiceEndpoints(t *testing.T) {
	f := newFixture(t, 4)
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := f.do(t, "", "GET", p, ""); r.status != http.StatusOK {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	f.srv.Metrics().Refresh(t.Context())
	r := f.do(t, "", "GET", "/metrics", "")
	for _, name := range []string{"nhisync_pass_duration_seconds", "nhisync_records", `nhisync_open_items{queue="conflicts"} 3`,
		`nhisync_writes_total{result="applied",system="cmdb"}`, `nhisync_system_up{system="policy"} 1`, "nhisync_propagation_seconds_bucket", "go_goroutines",
		`nhisync_leases_held{lease="pass"} 0`, `nhisync_leases_held{lease="feed/cmdb"} 0`,
		"nhisync_store_wal_frames", "nhisync_store_checkpoints_total", "nhisync_store_checkpoint_failures_total 0"} {
		if !strings.Contains(string(r.body), name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
	var systems []map[string]any
	f.ok(t, "vera", "GET", "/api/v1/systems", "", &systems)
	if len(systems) != 3 || systems[0]["name"] != "cmdb" || systems[0]["up"] != true || systems[0]["connector"] != "file" {
		t.Errorf("systems = %v", systems)
	}
	var cp map[string]any
	f.ok(t, "vera", "GET", "/api/v1/audit/checkpoint", "", &cp)
	if cp["size"].(float64) < 1 || !strings.Contains(cp["note"].(string), "nhisync") {
		t.Errorf("checkpoint = %v", cp)
	}
	var proof map[string]any
	f.ok(t, "vera", "GET", "/api/v1/audit/proof/2", "", &proof)
	for _, k := range []string{"leaf_index", "tree_size", "entry", "leaf_hash", "root_hash", "proof", "checkpoint"} {
		if _, ok := proof[k]; !ok {
			t.Errorf("proof has no %s", k)
		}
	}
	if r := f.do(t, "adam", "POST", "/api/v1/sync", ""); r.status != http.StatusAccepted || !strings.Contains(string(r.body), `"pass"`) {
		t.Errorf("POST /sync: %d %s, want 202 with the pass id", r.status, r.body)
	}
}

// TestSensitiveWithheld: a sensitive field's values appear nowhere the API
// or the console shows them: record, explain, the quarantine queue.
func TestSensitiveWithheld(t *testing.T) {
	f := newFixture(t, 6)
	var hint map[string]any
	for _, q := range f.items(t, "quarantine", "open") {
		if q["field"] == "secret_hint" {
			hint = q
		}
	}
	if hint == nil || hint["value"] != nil || hint["sensitive"] != true || hint["rule"] != "hint-not-plain" {
		t.Errorf("quarantine item of a sensitive field: %v", hint)
	}
	for _, p := range []string{"/api/v1/quarantine", "/api/v1/records/service_account/aws/bot-004",
		"/api/v1/records/service_account/aws/bot-001/explain/secret_hint", "/api/v1/records?limit=10"} {
		r := f.do(t, "vera", "GET", p, "")
		if r.status != http.StatusOK || strings.Contains(string(r.body), "plaintext") || strings.Contains(string(r.body), "hunter2") {
			t.Errorf("%s: %d, shows a sensitive value:\n%.300s", p, r.status, r.body)
		}
	}
	b := f.browser(t)
	b.signIn(t, "vera")
	for _, p := range []string{"/quarantine", "/records/service_account/aws/bot-004"} {
		if _, body, _ := b.get(t, p); strings.Contains(body, "plaintext") || strings.Contains(body, "hunter2") {
			t.Errorf("console %s shows a sensitive value", p)
		}
	}
}

// TestQueuePages: a queue pages by ID through the store, each item once.
func TestQueuePages(t *testing.T) {
	f := newFixture(t, 12)
	all := f.items(t, "approvals", "pending")
	if len(all) < 5 {
		t.Fatalf("fixture: %d pending approvals, want several", len(all))
	}
	var got []float64
	after := ""
	for pages := 0; ; pages++ {
		var page struct {
			Items []map[string]any `json:"items"`
			Next  string           `json:"next"`
		}
		f.ok(t, "vera", "GET", "/api/v1/approvals?limit=2&after="+after, "", &page)
		if len(page.Items) > 2 || pages > len(all) {
			t.Fatalf("page of %d items (limit 2), or too many pages", len(page.Items))
		}
		for _, it := range page.Items {
			got = append(got, it["id"].(float64))
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if len(got) != len(all) {
		t.Fatalf("paged %d approvals, the list has %d", len(got), len(all))
	}
	for i, a := range all {
		if got[i] != a["id"].(float64) {
			t.Errorf("page item %d = %v, want %v", i, got[i], a["id"])
		}
	}
}

// grepLines returns the lines of text containing any of the words.
func grepLines(text string, words ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// checkAnswer fails unless the operation documents the answer's status and
// the body validates against the documented schema.
func checkAnswer(t *testing.T, doc *openapi3.T, method, path string, r response) {
	t.Helper()
	op := doc.Paths.Value(path).GetOperation(method)
	ref := op.Responses.Status(r.status)
	if ref == nil || ref.Value == nil {
		t.Errorf("%s %s answered %d, which the document does not list", method, path, r.status)
		return
	}
	mt := ref.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		t.Errorf("%s %s %d: no JSON schema documented", method, path, r.status)
		return
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Errorf("%s %s %d: body is not JSON: %v", method, path, r.status, err)
		return
	}
	if err := mt.Schema.Value.VisitJSON(v); err != nil {
		t.Errorf("%s %s %d: body does not match the documented schema: %v\n%.300s", method, path, r.status, err, r.body)
	}
}
