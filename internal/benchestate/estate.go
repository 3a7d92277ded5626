// Package benchestate generates the estate cmd/nhisync-bench measures:
// three systems of service accounts (an identity provider as a SQLite
// table, a CMDB and a data catalog as CSV files) with a few percent of
// each kind of disagreement, and the drift edits made before its drift
// pass. The engine's benchmarks use it too, so that they measure the
// estate the bench command does.
package benchestate

import (
	"bufio"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the idp's database
)

// Config is the estate's nhisync.yaml: ten fields of the kinds SPEC
// §2 shows (sets merged, add-wins and remove-wins; an enum resolved
// strictest; a time; strings with authority; an enum settled by a person;
// an int; two rules), mapped by an identity provider (a SQLite table,
// 25 columns), a CMDB (CSV, 26 columns) and a data catalog (CSV, 22
// columns, no id column). Guards keep their defaults.
const Config = `version: 1
store: sqlite:./nhisync-data/nhisync.db
kinds:
  service_account:
    match: [platform, name]
    create_from: [idp, cmdb]
    retire_from: [idp]
    fields:
      name:           { type: string, required: true }
      platform:       { type: string, required: true }
      owner:          { type: string, authority: [cmdb, catalog] }
      classification: { type: set, resolve: merge }
      lifecycle:      { type: enum, values: [active, rotation_due, suspended, decommissioned], resolve: strictest }
      entitlements:   { type: set, resolve: merge, wins: remove, authority: [idp] }
      last_rotated:   { type: time, authority: [idp] }
      environment:    { type: enum, values: [dev, staging, prod], resolve: manual }
      cost_center:    { type: string, authority: [cmdb] }
      tier:           { type: int, authority: [catalog] }
    rules:
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')
      - name: cost-center-format
        check: cost_center == "" || cost_center.matches('^CC-[0-9]{4}$')
systems:
  idp:
    connector: sql
    kind: service_account
    dsn: sqlite:./idp.db
    table: accounts
    id: id
    fields: { name: name, platform: platform, lifecycle: status, entitlements: roles, last_rotated: last_rotated }
  cmdb:
    connector: file
    kind: service_account
    path: ./cmdb.csv
    id: sys_id
    fields:
      name: name
      platform: platform
      owner: owned_by
      lifecycle: status
      classification: tags
      entitlements: entitlements
      last_rotated: last_rotated
      environment: environment
      cost_center: cost_center
      tier: u_tier
  catalog:
    connector: file
    kind: service_account
    path: ./catalog.csv
    fields: { name: name, platform: platform, owner: steward, classification: labels, environment: environment, tier: tier, cost_center: cost_center }
`

// Mix is the estate's disagreement, each a share of the N NHIs, and the
// counts the generator made of each (reported by -json).
type Mix struct {
	// IdPOnly... are coverage: every NHI is in the idp except the
	// CMDB-only share (created from the CMDB); the CMDB and the catalog
	// hold a share of them.
	CMDBCoverage    float64 `json:"cmdb_coverage"`
	CatalogCoverage float64 `json:"catalog_coverage"`
	CMDBOnly        float64 `json:"cmdb_only"`
	// OwnerDiffers: the catalog's steward is another (valid) address than
	// the CMDB's owner; the CMDB outranks it and the catalog is repaired.
	OwnerDiffers float64 `json:"owner_differs"`
	// OwnerInvalid: the catalog's steward is no email address: quarantined.
	OwnerInvalid float64 `json:"owner_invalid"`
	// LabelsDiffer: CMDB tags and catalog labels each hold one the other
	// lacks: merged, and both are written.
	LabelsDiffer float64 `json:"labels_differ"`
	// LifecycleDiffers: the CMDB's status is not the idp's: strictest wins.
	LifecycleDiffers float64 `json:"lifecycle_differs"`
	// EntitlementsBehind: the CMDB lacks one of the idp's roles.
	EntitlementsBehind float64 `json:"entitlements_behind"`
	// EnvironmentConflict: CMDB and catalog name other environments:
	// resolve: manual opens a conflict.
	EnvironmentConflict float64 `json:"environment_conflict"`
	// Unmatched: catalog rows that match no NHI (the catalog is not in
	// create_from), as a share of N.
	Unmatched float64 `json:"unmatched"`
	// Vanished: idp rows deleted before the drift pass (the retirement
	// guard allows up to 10% of a system's records).
	Vanished float64 `json:"vanished"`
	// Drift: records changed before the drift pass, a third each: the
	// CMDB's owner, a label added in the catalog, a key rotation in the
	// idp (last_rotated).
	Drift float64 `json:"drift"`

	Counts map[string]int `json:"counts"`
}

// DefaultMix is the bench's estate: a few percent of each disagreement,
// drift the share of NHIs changed before the drift pass.
func DefaultMix(drift float64) Mix {
	return Mix{
		CMDBCoverage: 0.90, CatalogCoverage: 0.80, CMDBOnly: 0.02,
		OwnerDiffers: 0.03, OwnerInvalid: 0.01, LabelsDiffer: 0.03, LifecycleDiffers: 0.03,
		EntitlementsBehind: 0.02, EnvironmentConflict: 0.01, Unmatched: 0.02, Vanished: 0.005,
		Drift: drift,
	}
}

// Estate is what Generate made and the drift edits it keeps for later.
type Estate struct {
	dir string
	// Mix is the disagreement asked for, with the counts made of each.
	Mix Mix
	// The edits applied before the drift pass, chosen at generation.
	vanish      []string            // idp ids
	rotate      []string            // idp ids
	newOwner    map[string]string   // CMDB sys_id → new owner
	addLabel    map[string]struct{} // catalog name
	driftTotal  int
	idpRows     int
	cmdbRows    int
	catalogRows int
}

var (
	platforms    = []string{"aws", "gcp", "azure", "k8s", "github"}
	statuses     = []string{"active", "active", "active", "active", "rotation_due", "suspended"}
	labels       = []string{"pii", "pci", "internal", "public", "confidential", "sox", "gdpr", "hipaa"}
	roles        = []string{"read", "write", "admin", "deploy", "billing", "audit", "backup", "rotate-keys", "s3:GetObject", "kms:Decrypt"}
	environments = []string{"prod", "prod", "staging", "dev"}
	regions      = []string{"eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2", "eu-central-1"}
	units        = []string{"Payments", "Platform", "Data", "Identity", "Retail", "Risk", "Marketing"}
	words        = strings.Fields(`service account used by the nightly batch to export ledger entries into
		the warehouse reads customer orders writes invoices rotates keys every ninety days owned by
		platform team legacy integration with vendor portal scheduled job deploy pipeline runner
		monitoring agent scrapes metrics from clusters backup operator snapshots volumes`)
)

// gen builds one estate's rows; its random source is seeded, so the
// estate is the same for the same N.
type gen struct {
	r   *rand.Rand
	buf []byte
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// guid returns a random GUID-like id.
func (g *gen) guid() string {
	a, b := g.r.Uint64(), g.r.Uint64()
	g.buf = g.buf[:0]
	g.buf = appendHex(g.buf, a>>32, 8)
	g.buf = append(g.buf, '-')
	g.buf = appendHex(g.buf, a>>16&0xffff, 4)
	g.buf = append(g.buf, '-')
	g.buf = appendHex(g.buf, a&0xffff, 4)
	g.buf = append(g.buf, '-')
	g.buf = appendHex(g.buf, b>>48, 4)
	g.buf = append(g.buf, '-')
	g.buf = appendHex(g.buf, b&0xffffffffffff, 12)
	return string(g.buf)
}

func appendHex(b []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	for i := width - 1; i >= 0; i-- {
		b = append(b, digits[v>>(uint(i)*4)&0xf])
	}
	return b
}

// text returns a description of lo..hi words.
func (g *gen) text(lo, hi int) string {
	g.buf = g.buf[:0]
	for i := range lo + g.r.IntN(hi-lo+1) {
		if i > 0 {
			g.buf = append(g.buf, ' ')
		}
		g.buf = append(g.buf, words[g.r.IntN(len(words))]...)
	}
	return string(g.buf)
}

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// stamp returns an RFC 3339 time within two years of 2024-01-01.
func (g *gen) stamp() string {
	return time.Unix(epoch+g.r.Int64N(2*365*86400), 0).UTC().Format(time.RFC3339)
}

// pick returns k distinct elements of from, sorted and joined by ",".
func (g *gen) pick(from []string, k int) []string {
	out := make([]string, 0, k)
	for len(out) < k {
		s := from[g.r.IntN(len(from))]
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func (g *gen) email() string { return "team" + strconv.Itoa(g.r.IntN(2000)) + "@example.com" }

func (g *gen) money() string {
	return strconv.FormatFloat(float64(g.r.IntN(500000))/100, 'f', 2, 64)
}

// idpColumns, cmdbColumns and catalogColumns are the systems' native
// columns: the mapped ones and the noise a real export carries.
var (
	idpColumns = []string{"id", "name", "platform", "display_name", "description", "status", "roles", "last_rotated",
		"created_at", "updated_at", "created_by", "tenant_id", "key_id", "key_algorithm", "key_fingerprint", "expires_at",
		"last_login_at", "login_count", "source_ip", "region", "token_ttl_seconds", "scopes", "issuer", "audience", "mfa_required"}
	cmdbColumns = []string{"sys_id", "name", "platform", "owned_by", "status", "tags", "entitlements", "last_rotated",
		"environment", "cost_center", "u_tier", "sys_class_name", "short_description", "comments", "business_unit",
		"application", "app_id", "support_group", "location", "vendor", "monthly_cost_usd", "install_status",
		"operational_status", "sys_created_on", "sys_updated_on", "sys_updated_by"}
	catalogColumns = []string{"name", "platform", "steward", "labels", "environment", "tier", "cost_center", "description",
		"domain", "data_products", "pii", "retention_days", "last_reviewed", "reviewer", "url", "sla_hours",
		"schema_version", "created", "updated", "source", "notes", "status_page"}
)

// idpBatch rows go into one INSERT (25 columns × 40 rows = 1000
// parameters, under SQLite's limit).
const idpBatch = 40

// Generate writes the three systems of n NHIs into dir (idp.db,
// cmdb.csv, catalog.csv: the files Config names) with the mix's
// disagreement and chooses the edits made before the drift pass. The
// estate is the same for the same n and mix.
func Generate(dir string, n int, m Mix) (*Estate, error) {
	g := &gen{r: rand.New(rand.NewPCG(1, 2))}
	es := &Estate{dir: dir, Mix: m, newOwner: map[string]string{}, addLabel: map[string]struct{}{}}
	counts := map[string]int{}

	idp, err := newIDPWriter(filepath.Join(dir, "idp.db"))
	if err != nil {
		return nil, err
	}
	defer idp.close(false)

	cmdbF, err := os.Create(filepath.Join(dir, "cmdb.csv"))
	if err != nil {
		return nil, err
	}
	defer cmdbF.Close()
	catF, err := os.Create(filepath.Join(dir, "catalog.csv"))
	if err != nil {
		return nil, err
	}
	defer catF.Close()
	cmdbB, catB := bufio.NewWriterSize(cmdbF, 1<<20), bufio.NewWriterSize(catF, 1<<20)
	cmdb, cat := csv.NewWriter(cmdbB), csv.NewWriter(catB)
	if err := cmdb.Write(cmdbColumns); err != nil {
		return nil, err
	}
	if err := cat.Write(catalogColumns); err != nil {
		return nil, err
	}
	idpRow := make([]any, len(idpColumns))
	cmdbRow := make([]string, len(cmdbColumns))
	catRow := make([]string, len(catalogColumns))

	for i := range n {
		// Names and ids in no order, as real estates have them: the store
		// gets keys at random, not appended in order.
		name := "svc-" + string(appendHex(nil, uint64(i+1)*0x9e3779b97f4a7c15, 16))
		platform := platforms[i%len(platforms)]
		status := statuses[g.r.IntN(len(statuses))]
		owner := g.email()
		tags := g.pick(labels, 1+g.r.IntN(3))
		ents := g.pick(roles, 1+g.r.IntN(4))
		rotated := g.stamp()
		env := environments[g.r.IntN(len(environments))]
		cc := "CC-" + strconv.Itoa(1000+g.r.IntN(9000))
		tier := strconv.Itoa(1 + g.r.IntN(4))
		inIdP := !g.chance(m.CMDBOnly)
		inCMDB := !inIdP || g.chance(m.CMDBCoverage)
		inCat := g.chance(m.CatalogCoverage)
		idpID := g.guid()
		sysID := g.guid()
		drift := g.chance(m.Drift)

		if inIdP {
			es.idpRows++
			idpRow[0], idpRow[1], idpRow[2] = idpID, name, platform
			idpRow[3], idpRow[4] = name+" ("+platform+")", g.text(6, 14)
			idpRow[5], idpRow[6], idpRow[7] = status, strings.Join(ents, ","), rotated
			idpRow[8], idpRow[9], idpRow[10] = g.stamp(), g.stamp(), g.email()
			idpRow[11], idpRow[12], idpRow[13] = g.guid(), g.guid(), "ed25519"
			idpRow[14] = "SHA256:" + string(appendHex(appendHex(nil, g.r.Uint64(), 16), g.r.Uint64(), 16))
			idpRow[15], idpRow[16], idpRow[17] = g.stamp(), g.stamp(), strconv.Itoa(g.r.IntN(100000))
			idpRow[18] = "10." + strconv.Itoa(g.r.IntN(256)) + "." + strconv.Itoa(g.r.IntN(256)) + "." + strconv.Itoa(g.r.IntN(256))
			idpRow[19], idpRow[20] = regions[g.r.IntN(len(regions))], strconv.Itoa(900*(1+g.r.IntN(16)))
			idpRow[21] = strings.Join(g.pick(roles, 2), " ")
			idpRow[22], idpRow[23], idpRow[24] = "https://idp.example.com/"+platform, "api://"+platform, strconv.Itoa(g.r.IntN(2))
			idp.add(idpRow)
			switch {
			case g.chance(m.Vanished):
				es.vanish = append(es.vanish, idpID)
				counts["vanished"]++
			case drift && i%3 == 2:
				es.rotate = append(es.rotate, idpID)
				es.driftTotal++
			}
		}
		if inCMDB {
			es.cmdbRows++
			cstatus, cents, ctags := status, ents, tags
			if inIdP && g.chance(m.LifecycleDiffers) {
				for cstatus == status {
					cstatus = statuses[g.r.IntN(len(statuses))]
				}
				counts["lifecycle_differs"]++
			}
			if inIdP && len(ents) > 1 && g.chance(m.EntitlementsBehind) {
				cents = ents[1:]
				counts["entitlements_behind"]++
			}
			if inCat && g.chance(m.LabelsDiffer) {
				ctags = addOne(tags, "cmdb-only")
				tags = addOne(tags, "catalog-only")
				counts["labels_differ"]++
			}
			cenv := env
			if inCat && g.chance(m.EnvironmentConflict) {
				cenv = "staging"
				if env == "staging" {
					cenv = "prod"
				}
				counts["environment_conflict"]++
			}
			// Copies of another system's authoritative fields exist only
			// where that system holds the record: a copy nothing feeds
			// would be refused and cleared, which no estate does at scale.
			crotated, ctier := rotated, tier
			if !inIdP {
				cents, crotated = nil, ""
			}
			if !inCat {
				ctier = ""
			}
			cmdbRow[0], cmdbRow[1], cmdbRow[2], cmdbRow[3] = sysID, name, platform, owner
			cmdbRow[4], cmdbRow[5], cmdbRow[6], cmdbRow[7] = cstatus, strings.Join(ctags, ","), strings.Join(cents, ","), crotated
			cmdbRow[8], cmdbRow[9], cmdbRow[10] = cenv, cc, ctier
			cmdbRow[11], cmdbRow[12], cmdbRow[13] = "cmdb_ci_service_account", g.text(4, 10), g.text(0, 20)
			cmdbRow[14], cmdbRow[15] = units[g.r.IntN(len(units))], "app-"+strconv.Itoa(g.r.IntN(3000))
			cmdbRow[16], cmdbRow[17] = g.guid(), units[g.r.IntN(len(units))]+" Ops"
			cmdbRow[18], cmdbRow[19], cmdbRow[20] = regions[g.r.IntN(len(regions))], platform, g.money()
			cmdbRow[21], cmdbRow[22] = "Installed", "Operational"
			cmdbRow[23], cmdbRow[24], cmdbRow[25] = g.stamp(), g.stamp(), g.email()
			if err := cmdb.Write(cmdbRow); err != nil {
				return nil, err
			}
			if drift && i%3 == 0 {
				es.newOwner[sysID] = "moved" + strconv.Itoa(i) + "@example.com"
				es.driftTotal++
			}
		}
		if inCat {
			es.catalogRows++
			steward := owner
			switch {
			case inCMDB && g.chance(m.OwnerInvalid):
				steward = "team " + strconv.Itoa(g.r.IntN(2000)) + " (ask in #platform)"
				counts["owner_invalid"]++
			case inCMDB && g.chance(m.OwnerDiffers):
				steward = g.email()
				if steward != owner {
					counts["owner_differs"]++
				}
			}
			catRow[0], catRow[1], catRow[2], catRow[3] = name, platform, steward, strings.Join(tags, ",")
			ccc := cc
			if !inCMDB {
				ccc = ""
			}
			catRow[4], catRow[5], catRow[6] = env, tier, ccc
			catRow[7], catRow[8], catRow[9] = g.text(8, 24), units[g.r.IntN(len(units))], strconv.Itoa(g.r.IntN(40))
			catRow[10], catRow[11] = strconv.FormatBool(g.chance(0.3)), strconv.Itoa(30*(1+g.r.IntN(24)))
			catRow[12], catRow[13] = g.stamp(), g.email()
			catRow[14] = "https://catalog.example.com/entities/" + name
			catRow[15], catRow[16] = strconv.Itoa(4*(1+g.r.IntN(12))), "v"+strconv.Itoa(1+g.r.IntN(5))
			catRow[17], catRow[18], catRow[19] = g.stamp(), g.stamp(), "backstage"
			catRow[20], catRow[21] = g.text(0, 12), "https://status.example.com/"+platform
			if err := cat.Write(catRow); err != nil {
				return nil, err
			}
			if drift && i%3 == 1 {
				es.addLabel[name] = struct{}{}
				es.driftTotal++
			}
		}
		// Catalog rows naming an NHI no registry knows.
		if g.chance(m.Unmatched) {
			es.catalogRows++
			counts["unmatched"]++
			catRow[0], catRow[1], catRow[2] = "orphan-"+string(appendHex(nil, uint64(i+1)*0xbf58476d1ce4e5b9, 16)), platform, g.email()
			if err := cat.Write(catRow); err != nil {
				return nil, err
			}
		}
		if !inIdP {
			counts["cmdb_only"]++
		}
	}
	if err := idp.close(true); err != nil {
		return nil, err
	}
	cmdb.Flush()
	cat.Flush()
	for _, err := range []error{cmdb.Error(), cat.Error(), cmdbB.Flush(), catB.Flush()} {
		if err != nil {
			return nil, err
		}
	}
	counts["drift"] = es.driftTotal
	counts["idp_rows"], counts["cmdb_rows"], counts["catalog_rows"] = es.idpRows, es.cmdbRows, es.catalogRows
	es.Mix.Counts = counts
	return es, nil
}

// idpWriter inserts the idp's rows from a goroutine of its own, so that
// SQLite's work overlaps the making of the rows (at 1M, about half the
// generator's time is the inserts).
type idpWriter struct {
	db      *sql.DB
	tx      *sql.Tx
	batches chan []any
	done    chan error
	cur     []any
	closed  bool
}

func newIDPWriter(path string) (*idpWriter, error) {
	// A page cache that holds the primary key's index: ids come at
	// random, and with SQLite's default 2 MB cache a 1M load spends its
	// time evicting and re-reading index pages.
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(off)&_pragma=synchronous(off)&_pragma=cache_size(-262144)")
	if err != nil {
		return nil, err
	}
	w := &idpWriter{db: db, batches: make(chan []any, 16), done: make(chan error, 1)}
	if _, err := db.Exec(`CREATE TABLE accounts(` + strings.Join(idpColumns, " TEXT, ") + ` TEXT, PRIMARY KEY (id))`); err != nil {
		db.Close()
		return nil, err
	}
	if w.tx, err = db.Begin(); err != nil {
		db.Close()
		return nil, err
	}
	go w.insert()
	return w, nil
}

// insert runs the INSERTs, one per batch; after a failure it drains the
// batches and reports the failure at close.
func (w *idpWriter) insert() {
	cols := strings.Join(idpColumns, ", ")
	ph := "(" + strings.Repeat("?,", len(idpColumns)-1) + "?)"
	full, err := w.tx.Prepare(`INSERT INTO accounts(` + cols + `) VALUES ` + strings.Repeat(ph+",", idpBatch-1) + ph)
	for b := range w.batches {
		switch k := len(b) / len(idpColumns); {
		case err != nil:
		case k == idpBatch:
			_, err = full.Exec(b...)
		default:
			_, err = w.tx.Exec(`INSERT INTO accounts(`+cols+`) VALUES `+strings.Repeat(ph+",", k-1)+ph, b...)
		}
	}
	w.done <- err
}

// add queues one row (its values are copied).
func (w *idpWriter) add(row []any) {
	if w.cur == nil {
		w.cur = make([]any, 0, idpBatch*len(idpColumns))
	}
	w.cur = append(w.cur, row...)
	if len(w.cur) == cap(w.cur) {
		w.batches <- w.cur
		w.cur = nil
	}
}

// close inserts what is queued and commits, or (commit false, or after
// a failure) rolls back; a second call does nothing.
func (w *idpWriter) close(commit bool) error {
	if w.closed {
		return nil
	}
	w.closed = true
	if commit && len(w.cur) > 0 {
		w.batches <- w.cur
	}
	close(w.batches)
	err := <-w.done
	if err == nil && commit {
		err = w.tx.Commit()
	} else {
		w.tx.Rollback()
	}
	if cerr := w.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// addOne returns set with s added, sorted.
func addOne(set []string, s string) []string {
	out := append(slices.Clip(set), s)
	slices.Sort(out)
	return out
}

// ApplyDrift makes the changes chosen at generation in the systems as
// they are now (after the passes' writes): idp rows vanish and keys
// rotate, CMDB owners change, catalog labels gain one.
func (es *Estate) ApplyDrift() error {
	db, err := sql.Open("sqlite", filepath.Join(es.dir, "idp.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UTC().Format(time.RFC3339)
	for _, id := range es.vanish {
		if _, err := tx.Exec(`DELETE FROM accounts WHERE id = ?`, id); err != nil {
			return err
		}
	}
	for _, id := range es.rotate {
		if _, err := tx.Exec(`UPDATE accounts SET last_rotated = ?, updated_at = ? WHERE id = ?`, now, now, id); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	err = rewriteCSV(filepath.Join(es.dir, "cmdb.csv"), func(header, row []string) error {
		if o, ok := es.newOwner[row[0]]; ok {
			row[slices.Index(header, "owned_by")] = o
		}
		return nil
	})
	if err != nil {
		return err
	}
	return rewriteCSV(filepath.Join(es.dir, "catalog.csv"), func(header, row []string) error {
		if _, ok := es.addLabel[row[0]]; ok {
			i := slices.Index(header, "labels")
			set := strings.Split(row[i], ",")
			if row[i] == "" {
				set = nil
			}
			row[i] = strings.Join(addOne(set, "reviewed"), ",")
		}
		return nil
	})
}

// Vanished is the number of idp rows ApplyDrift deletes.
func (es *Estate) Vanished() int { return len(es.vanish) }

// rewriteCSV streams a CSV file through edit and replaces it.
func rewriteCSV(path string, edit func(header, row []string) error) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := path + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	r, w := csv.NewReader(bufio.NewReaderSize(in, 1<<20)), csv.NewWriter(bw)
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	header = slices.Clone(header)
	if err := w.Write(header); err != nil {
		return err
	}
	r.ReuseRecord = true
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if err := edit(header, row); err != nil {
			return err
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
