package quickstart

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// driftCase is one kind of planted disagreement between the systems.
type driftCase int

// The planted cases, in the order the walkthrough tells them.
const (
	caseNone driftCase = iota
	caseOwnerConflict
	caseOrphan
	caseUnknownInPolicy
	caseUnknownInCatalog
	caseLabelMerge
	caseInvalidOwner
	caseDecommissioned
	casePolicyApproval
	caseNameVariant
	caseEntitlementDrift
	caseCMDBOnly
	caseIDPOnly
	numCases
)

// account is one identity: its true facts, and how each system holds it
// (nil where the system does not know it).
type account struct {
	platform, name string
	app            application
	nhiType, env   string
	owner          string
	tags           []string
	lifecycle      string
	scopes         []string
	policyState    string
	rotated        time.Time
	updated        time.Time

	drift driftCase
	note  string
	// reused: the catalog says several applications use the identity.
	reused bool

	idp     *idpRow
	cmdb    *cmdbRow
	catalog *catalogEntry
	policy  *policyEntry
}

// key is the account's record key: its match values joined by "/".
func (a *account) key() string { return a.platform + "/" + a.name }

// population is the generated estate.
type population struct {
	rng      *rand.Rand
	now      time.Time
	accounts []*account
	size     [numCases]int
	taken    map[string]bool // account keys in use
	ids      map[string]bool // native ids in use
	suffixes map[string]int  // next numeric suffix per base name
	policies int             // policy ids handed out
	// retiredApp is the application the register lists as decommissioned.
	retiredApp string
}

// pcgStream fixes the second PCG word so a seed alone picks the output.
const pcgStream = 0x6e6869_73796e63 // "nhisync"

// newPopulation generates n accounts (including the ones only the policy
// engine or the catalog know) and plants every drift case among them.
func newPopulation(seed int64, n int, now time.Time) *population {
	p := &population{
		rng:      rand.New(rand.NewPCG(uint64(seed), pcgStream)),
		now:      now,
		taken:    map[string]bool{},
		ids:      map[string]bool{},
		suffixes: map[string]int{},
	}
	// Each case gets 2..hi accounts: enough to show a pattern, few enough
	// that no system sees more than 20 overwrites in the first sync (four
	// cases can touch one system: 4 × 5).
	hi := min(max(1+n/50, 2), 5)
	for c := caseOwnerConflict; c < numCases; c++ {
		p.size[c] = 2 + p.rng.IntN(hi-1)
	}
	p.size[caseUnknownInCatalog] = 1

	for _, e := range exemplars {
		a := p.newAccount(e.platform, e.name, appNamed(e.app), e.nhiType)
		a.drift = e.drift
	}
	unknown := p.size[caseUnknownInPolicy] + p.size[caseUnknownInCatalog]
	for len(p.accounts) < n-unknown {
		p.newRegular()
	}
	pool := slices.Clone(p.accounts[len(exemplars):])
	p.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	for c := caseOwnerConflict; c < numCases; c++ {
		if c == caseUnknownInPolicy || c == caseUnknownInCatalog {
			continue
		}
		need := p.size[c]
		for _, e := range exemplars {
			if e.drift == c {
				need--
			}
		}
		for _, a := range pool[:need] {
			a.drift = c
		}
		pool = pool[need:]
	}
	for i := range unknown {
		platform := p.platform()
		u := unknownNames[i%len(unknownNames)]
		a := p.newAccount(platform, p.unique(platform, u.name), applications[p.rng.IntN(len(applications))], u.nhiType)
		a.drift = caseUnknownInPolicy
		if i >= p.size[caseUnknownInPolicy] {
			a.drift = caseUnknownInCatalog
		}
	}

	for _, a := range p.accounts {
		p.baseline(a)
		p.plant(a)
	}
	p.plantGovernance()
	return p
}

// plantGovernance plants what the governance reports find, without drawing
// from the random source (so the rest of the estate stays as the seed made
// it): an application decommissioned in the register while its NHIs stay
// active, and identities the catalog says several applications use. Stale
// rotations need no planting: identities in rotation_due were last
// rotated more than 90 days ago.
func (p *population) plantGovernance() {
	// The retired application is the one with the fewest live NHIs in the
	// CMDB (at least one), the first in the vocabulary on a tie.
	best := -1
	for _, app := range applications {
		n := 0
		for _, a := range p.accounts {
			if a.cmdb != nil && a.cmdb.App == app.name && goldenLifecycle(a) != nhisync.LifecycleDecommissioned {
				n++
			}
		}
		if n > 0 && (best < 0 || n < best) {
			best, p.retiredApp = n, app.name
		}
	}
	reused := 0
	for _, a := range p.accounts {
		if reused == 2 {
			break
		}
		if a.drift != caseNone || a.idp == nil || a.cmdb == nil || a.catalog == nil || a.app.name == p.retiredApp ||
			goldenLifecycle(a) == nhisync.LifecycleDecommissioned {
			continue
		}
		i := slices.IndexFunc(applications, func(x application) bool { return x.name == a.app.name })
		other := applications[(i+1)%len(applications)].name
		if other == p.retiredApp {
			other = applications[(i+2)%len(applications)].name
		}
		a.catalog.UsedBy = sorted(a.app.name, other)
		a.reused = true
		reused++
	}
}

// goldenLifecycle is the lifecycle the first sync settles on: the
// strictest (resolve: strictest) of what the idp and the cmdb say.
func goldenLifecycle(a *account) string {
	best := ""
	for _, v := range []string{idpStatus(a), cmdbStatus(a)} {
		if slices.Index(lifecycleOrder, v) > slices.Index(lifecycleOrder, best) {
			best = v
		}
	}
	return best
}

// lifecycleOrder is the config's lifecycle values, least strict first.
var lifecycleOrder = []string{"active", "rotation_due", "suspended", nhisync.LifecycleDecommissioned}

func idpStatus(a *account) string {
	if a.idp == nil {
		return ""
	}
	return a.idp.Status
}

func cmdbStatus(a *account) string {
	if a.cmdb == nil {
		return ""
	}
	return a.cmdb.Status
}

// appNamed returns the application called name.
func appNamed(name string) application {
	for _, a := range applications {
		if a.name == name {
			return a
		}
	}
	panic("quickstart: no application " + name)
}

// platform picks a platform by weight.
func (p *population) platform() string {
	total := 0
	for _, pl := range platforms {
		total += pl.weight
	}
	r := p.rng.IntN(total)
	for _, pl := range platforms {
		if r < pl.weight {
			return pl.name
		}
		r -= pl.weight
	}
	return platforms[0].name
}

// newRegular adds an account named after an application and a role.
func (p *population) newRegular() *account {
	var platform, name string
	var app application
	var nhiType string
	for try := 0; ; try++ {
		platform = p.platform()
		app = applications[p.rng.IntN(len(applications))]
		role := roles[p.rng.IntN(len(roles))]
		name = app.name + "-" + role.suffix
		nhiType = role.nhiType
		if !p.taken[platform+"/"+name] && !isExemplarName(name) {
			break
		}
		if try >= 5 {
			// The word lists are exhausted (a very large estate): number it.
			name = p.unique(platform, name)
			break
		}
	}
	if nhiType == "" {
		nhiType = "service_account"
		if platform == "k8s" {
			nhiType = "workload"
		}
	}
	return p.newAccount(platform, name, app, nhiType)
}

// isExemplarName reports whether name belongs to an exemplar, which the
// walkthrough names without a platform, so no other platform may reuse it.
func isExemplarName(name string) bool {
	for _, e := range exemplars {
		if e.name == name {
			return true
		}
	}
	return false
}

// unique returns base, or base-N for the first N that makes platform/name
// unused.
func (p *population) unique(platform, base string) string {
	name := base
	for p.taken[platform+"/"+name] {
		k := platform + "/" + base
		p.suffixes[k]++
		name = base + "-" + strconv.Itoa(p.suffixes[k]+1)
	}
	return name
}

// newAccount draws an account's true facts.
func (p *population) newAccount(platform, name string, app application, nhiType string) *account {
	a := &account{platform: platform, name: name, app: app, nhiType: nhiType}
	p.taken[a.key()] = true
	a.env = pick(p.rng, environments)
	a.owner = p.owner(app)
	a.tags = p.labels()
	a.lifecycle = p.lifecycle()
	a.scopes = p.grants(platform)
	a.policyState = pick(p.rng, policyStates)
	days := 1 + p.rng.IntN(85)
	if a.lifecycle == "rotation_due" {
		days = 91 + p.rng.IntN(270)
	}
	a.rotated = p.ago(days)
	a.updated = p.ago(p.rng.IntN(min(days, 30) + 1))
	if a.updated.Before(a.rotated) {
		a.updated = a.rotated
	}
	p.accounts = append(p.accounts, a)
	return a
}

// ago returns a second-aligned time about days before now.
func (p *population) ago(days int) time.Time {
	secs := p.rng.IntN(86400)
	return p.now.Add(-time.Duration(days)*24*time.Hour - time.Duration(secs)*time.Second).UTC()
}

// owner picks a person, or now and then the owning team's mailbox.
func (p *population) owner(app application) string {
	if p.rng.IntN(10) < 3 {
		return app.team + "@example.com"
	}
	return p.person()
}

func (p *population) person() string {
	return pick(p.rng, firstNames) + "." + pick(p.rng, lastNames) + "@example.com"
}

// labels picks one sensitivity level and, sometimes, regulated-data tags.
func (p *population) labels() []string {
	tags := []string{pick(p.rng, levels)}
	for _, t := range regulatedTag {
		if tags[0] != "public" && p.rng.IntN(4) == 0 {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	return tags
}

func (p *population) lifecycle() string {
	r := p.rng.IntN(100)
	for _, l := range lifecycles {
		if r < l.weight {
			return l.state
		}
		r -= l.weight
	}
	return "active"
}

// grants picks one to four entitlements of the platform.
func (p *population) grants(platform string) []string {
	all := entitlements[platform]
	n := 1 + p.rng.IntN(4)
	out := make([]string, 0, n)
	for _, i := range p.rng.Perm(len(all))[:n] {
		out = append(out, all[i])
	}
	slices.Sort(out)
	return out
}

// baseline makes every system that should know the account hold it, all
// agreeing.
func (p *population) baseline(a *account) {
	inPolicy := p.rng.IntN(10) < 6
	switch a.drift {
	case casePolicyApproval, caseEntitlementDrift, caseUnknownInPolicy:
		inPolicy = true
	case caseCMDBOnly, caseUnknownInCatalog:
		inPolicy = false
	}
	a.idp = &idpRow{
		ID: p.idpID(a.platform), Name: a.name, Platform: a.platform, Status: a.lifecycle,
		Scopes: slices.Clone(a.scopes), RotatedAt: a.rotated, UpdatedAt: a.updated,
		CreatedBy: pick(p.rng, creators),
	}
	a.cmdb = &cmdbRow{
		SysID: p.hexID(32), Name: a.name, Platform: a.platform, Type: a.nhiType,
		Owner: a.owner, App: a.app.name, Status: a.lifecycle, Tags: slices.Clone(a.tags),
		Env: a.env, CostCenter: a.app.costCenter, Notes: pick(p.rng, cmdbNotes),
	}
	a.catalog = &catalogEntry{
		Name: a.name, Platform: a.platform, Steward: a.owner, Tags: slices.Clone(a.tags),
		Description: describeAccount(a),
	}
	if inPolicy {
		p.policies++
		ticket := ""
		if p.rng.IntN(3) > 0 {
			ticket = fmt.Sprintf("SEC-%d", 1000+p.rng.IntN(9000))
		}
		a.policy = &policyEntry{
			ID: fmt.Sprintf("pol-%05d", p.policies), Account: a.name, Platform: a.platform,
			Grants: slices.Clone(a.scopes), State: a.policyState, Ticket: ticket,
		}
		a.catalog.Policy = a.policyState
	}
}

// describeAccount is the catalog's free-text description.
func describeAccount(a *account) string {
	kind := strings.ReplaceAll(a.nhiType, "_", " ")
	kind = strings.ToUpper(kind[:1]) + kind[1:]
	switch a.nhiType {
	case "api_key":
		kind = "API key"
	case "oauth_app":
		kind = "OAuth app"
	case "ai_agent":
		kind = "AI agent"
	}
	return fmt.Sprintf("%s used by %s (%s)", kind, a.app.name, a.env)
}

// plant applies the account's drift case to the systems' copies.
func (p *population) plant(a *account) {
	switch a.drift {
	case caseOwnerConflict:
		other := p.person()
		for other == a.owner {
			other = p.person()
		}
		a.catalog.Steward = other
		a.note = fmt.Sprintf("cmdb owner %s, catalog steward %s", a.owner, other)
	case caseOrphan:
		a.owner = ""
		a.cmdb.Owner, a.catalog.Steward = "", ""
		a.note = "no owner in cmdb or catalog"
	case caseUnknownInPolicy:
		a.idp, a.cmdb, a.catalog = nil, nil, nil
		a.note = "only in policy.json"
	case caseUnknownInCatalog:
		a.idp, a.cmdb, a.policy = nil, nil, nil
		a.note = "only in catalog.yaml"
	case caseLabelMerge:
		level := pick(p.rng, []string{"internal", "confidential"})
		extra := slices.Clone(regulatedTag)
		p.rng.Shuffle(len(extra), func(i, j int) { extra[i], extra[j] = extra[j], extra[i] })
		a.tags = []string{level}
		a.cmdb.Tags = sorted(level, extra[0])
		a.catalog.Tags = sorted(level, extra[1])
		a.note = fmt.Sprintf("cmdb tags %s, catalog tags %s", strings.Join(a.cmdb.Tags, ","), strings.Join(a.catalog.Tags, ","))
	case caseInvalidOwner:
		a.cmdb.Owner = pick(p.rng, invalidOwners)
		a.note = fmt.Sprintf("cmdb owner %q, catalog steward %s", a.cmdb.Owner, a.catalog.Steward)
	case caseDecommissioned:
		a.idp.Status, a.cmdb.Status = "decommissioned", "active"
		a.idp.UpdatedAt = p.ago(0)
		a.note = "idp status decommissioned, cmdb status active"
	case casePolicyApproval:
		a.catalog.Policy = "enforced"
		a.policy.State = pick(p.rng, []string{"monitor", "exempt"})
		a.note = fmt.Sprintf("catalog policy enforced, policy.json state %s", a.policy.State)
	case caseNameVariant:
		p.plantNameVariant(a)
	case caseEntitlementDrift:
		p.plantEntitlementDrift(a)
	case caseCMDBOnly:
		a.idp, a.policy = nil, nil
		a.note = "in cmdb and catalog, not in idp"
	case caseIDPOnly:
		a.cmdb = nil
		a.note = "in idp, not in cmdb"
	}
}

// plantNameVariant spells the name differently in one system other than
// the idp, whose spelling stays canonical.
func (p *population) plantNameVariant(a *account) {
	systems := []string{"cmdb", "catalog"}
	if a.policy != nil {
		systems = append(systems, "policy")
	}
	system, style := pick(p.rng, systems), p.rng.IntN(3)
	if a.name == "payments-bot" {
		system, style = "cmdb", 0
	}
	var v string
	switch style {
	case 0:
		v = titleCase(a.name) + " "
	case 1:
		v = strings.ToUpper(a.name)
	default:
		v = "  " + a.name
	}
	switch system {
	case "cmdb":
		a.cmdb.Name = v
	case "catalog":
		a.catalog.Name = v
	default:
		a.policy.Account = v
	}
	a.note = fmt.Sprintf("idp name %q, %s name %q", a.name, system, v)
}

// titleCase capitalises each dash-separated word: payments-bot → Payments-Bot.
func titleCase(s string) string {
	words := strings.Split(s, "-")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, "-")
}

// plantEntitlementDrift gives the idp, the policy engine or both a grant
// the other lacks.
func (p *population) plantEntitlementDrift(a *account) {
	var spare []string
	for _, e := range entitlements[a.platform] {
		if !slices.Contains(a.scopes, e) {
			spare = append(spare, e)
		}
	}
	p.rng.Shuffle(len(spare), func(i, j int) { spare[i], spare[j] = spare[j], spare[i] })
	mode := p.rng.IntN(3)
	if a.name == "ci-deployer" {
		mode = 2
		if i := slices.Index(spare, "repo:admin"); i > 0 {
			spare[0], spare[i] = spare[i], spare[0]
		}
	}
	var notes []string
	if mode != 1 {
		a.idp.Scopes = sorted(append(slices.Clone(a.scopes), spare[0])...)
		notes = append(notes, "idp adds "+spare[0])
	}
	if mode != 0 {
		a.policy.Grants = sorted(append(slices.Clone(a.scopes), spare[len(spare)-1])...)
		notes = append(notes, "policy adds "+spare[len(spare)-1])
	}
	a.note = strings.Join(notes, ", ")
}

// idpID returns a new id in the platform's own shape.
func (p *population) idpID(platform string) string {
	for {
		var id string
		switch platform {
		case "aws":
			id = "AROA" + p.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 17)
		case "gcp":
			id = "1" + p.chars("0123456789", 20)
		case "github":
			id = "Iv1." + p.chars("0123456789abcdef", 16)
		default:
			id = p.uuid()
		}
		if !p.ids[id] {
			p.ids[id] = true
			return id
		}
	}
}

// hexID returns n new lower-case hex digits (a ServiceNow sys_id is 32).
func (p *population) hexID(n int) string {
	for {
		id := p.chars("0123456789abcdef", n)
		if !p.ids[id] {
			p.ids[id] = true
			return id
		}
	}
}

func (p *population) uuid() string {
	h := p.chars("0123456789abcdef", 32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

func (p *population) chars(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[p.rng.IntN(len(alphabet))]
	}
	return string(b)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func sorted(xs ...string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}
