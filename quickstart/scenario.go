package quickstart

import (
	"fmt"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// StaleRotation is the max_age of last_rotated in the demo config: a
// rotation older than this is a long-lived secret.
const StaleRotation = 2160 * time.Hour

// System names of the demo workspace, in config order.
const (
	SystemIDP     = "idp"
	SystemCMDB    = "cmdb"
	SystemCatalog = "catalog"
	SystemPolicy  = "policy"
)

// Systems lists the demo systems holding service accounts, in config order.
var Systems = []string{SystemIDP, SystemCMDB, SystemCatalog, SystemPolicy}

// SystemApps is the application register (kind application), the fifth
// system: it lists the applications and which are decommissioned.
const SystemApps = "apps"

// Scenario tells what Generate wrote: where, how many records each system
// holds, and which accounts carry which planted drift. Account keys are
// "platform/name" in canonical (lower-case, trimmed) spelling, so
// "service_account/" + key names the golden record.
type Scenario struct {
	// Dir is the workspace directory (absolute); ConfigPath its nhisync.yaml.
	Dir        string
	ConfigPath string
	Seed       int64
	// Accounts is the number of distinct identities across all systems.
	Accounts int
	// Records counts the records each system holds, by system name.
	Records map[string]int
	// OverwriteBound is, per system, the most overwrites of non-empty
	// values the first sync can plan there (every planted case that can
	// touch the system counted as if it did). It stays at or below 20, under
	// the blast-radius guard's default of more than 25.
	OverwriteBound map[string]int

	// OwnerConflict: cmdb owner ≠ catalog steward; cmdb outranks the
	// catalog, so its owner wins and the catalog is repaired.
	OwnerConflict []string
	// Orphans: no owner in cmdb or catalog.
	Orphans []string
	// UnknownInPolicy: only in policy.json; policy may not create records,
	// so they are unmatched. UnknownInCatalog: the same, only in the catalog.
	UnknownInPolicy  []string
	UnknownInCatalog []string
	// LabelMerge: cmdb and catalog tags differ; merge sends the union to both.
	LabelMerge []string
	// InvalidOwner: the cmdb owner is not an email address; the proposal is
	// quarantined by rule owner-is-email and the catalog's steward stands.
	InvalidOwner []string
	// Decommissioned: idp says decommissioned, cmdb active; strictest makes
	// decommissioned win and the cmdb is written.
	Decommissioned []string
	// PolicyApproval: catalog policy ≠ policy.json state; the catalog is the
	// authority and the write to policy waits for approval.
	PolicyApproval []string
	// NameVariants: one system spells the name with other case or
	// surrounding spaces; the records still correlate.
	NameVariants []string
	// EntitlementDrift: idp scopes and policy grants differ; merge (wins:
	// remove) brings both to the union on the first pass.
	EntitlementDrift []string
	// CMDBOnly: in cmdb (and catalog) but not idp: created from cmdb.
	// IDPOnly: in idp but not cmdb: the cmdb gets nothing (no provision).
	CMDBOnly []string
	IDPOnly  []string

	// Governance problems the reports find (nhisync report …):
	// RetiredApp is the application the register lists as decommissioned;
	// RetiredAppNHIs the live identities still serving it (report orphans).
	RetiredApp     string
	RetiredAppNHIs []string
	// Reused: the catalog says two applications use each (report hygiene).
	Reused []string
	// StaleRotations: the idp's last rotation is older than last_rotated's
	// max_age of 90 days (report stale).
	StaleRotations []string
	// LiveOrphans are the Orphans whose lifecycle is not decommissioned:
	// the ones report orphans lists as having no owner.
	LiveOrphans []string
	// Live counts the identities the first sync makes golden records of
	// that are not decommissioned; Lacks lists, per system, those of them
	// the system does not hold (report coverage).
	Live  int
	Lacks map[string][]string

	// Notes says, per drifted account key, what was planted
	// ("cmdb owner a@example.com, catalog steward b@example.com").
	Notes map[string]string
}

// Case is one planted drift case and the accounts that carry it.
type Case struct {
	// Name is a stable identifier ("owner-conflict").
	Name string
	// Title says what disagrees; Expect what the first sync does about it.
	Title  string
	Expect string
	Keys   []string
}

// caseInfo describes each case for people.
var caseInfo = [numCases]struct{ name, title, expect string }{
	caseOwnerConflict:    {"owner-conflict", "cmdb and catalog name different owners", "cmdb outranks catalog: cmdb wins, the catalog is repaired"},
	caseOrphan:           {"orphan", "no owner anywhere", "orphan candidates (nhisync report orphans)"},
	caseUnknownInPolicy:  {"unknown-in-policy", "only the policy engine knows it", "unmatched: policy may not create records"},
	caseUnknownInCatalog: {"unknown-in-catalog", "only the catalog knows it", "unmatched: catalog may not create records"},
	caseLabelMerge:       {"label-merge", "cmdb and catalog tags edited apart", "merged: both get the union"},
	caseInvalidOwner:     {"invalid-owner", "cmdb owner is not an email", "quarantined by rule owner-is-email"},
	caseDecommissioned:   {"decommissioned", "idp decommissioned, cmdb active", "strictest: decommissioned wins, the cmdb is written"},
	casePolicyApproval:   {"policy-approval", "catalog policy differs from the policy engine", "catalog decides; the write to policy waits for approval"},
	caseNameVariant:      {"name-variant", "name spelled with other case or spaces", "still one record: match is trimmed and case-insensitive"},
	caseEntitlementDrift: {"entitlement-drift", "idp scopes and policy grants differ", "merged (wins: remove): both get the union"},
	caseCMDBOnly:         {"cmdb-only", "in cmdb, not in idp", "created from cmdb"},
	caseIDPOnly:          {"idp-only", "in idp, not in cmdb", "created from idp; cmdb gets nothing (no provision)"},
}

// keys returns the list of the scenario that holds case c.
func (s *Scenario) keys(c driftCase) *[]string {
	switch c {
	case caseOwnerConflict:
		return &s.OwnerConflict
	case caseOrphan:
		return &s.Orphans
	case caseUnknownInPolicy:
		return &s.UnknownInPolicy
	case caseUnknownInCatalog:
		return &s.UnknownInCatalog
	case caseLabelMerge:
		return &s.LabelMerge
	case caseInvalidOwner:
		return &s.InvalidOwner
	case caseDecommissioned:
		return &s.Decommissioned
	case casePolicyApproval:
		return &s.PolicyApproval
	case caseNameVariant:
		return &s.NameVariants
	case caseEntitlementDrift:
		return &s.EntitlementDrift
	case caseCMDBOnly:
		return &s.CMDBOnly
	case caseIDPOnly:
		return &s.IDPOnly
	}
	return nil
}

// Cases returns every planted case in walkthrough order.
func (s *Scenario) Cases() []Case {
	out := make([]Case, 0, numCases-1)
	for c := caseOwnerConflict; c < numCases; c++ {
		info := caseInfo[c]
		out = append(out, Case{Name: info.name, Title: info.title, Expect: info.expect, Keys: *s.keys(c)})
	}
	return out
}

// Describe returns a few lines for people: what was written and which
// accounts to look at for each planted drift.
func (s *Scenario) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Demo workspace %s (seed %d): %d identities;", s.Dir, s.Seed, s.Accounts)
	for i, sys := range Systems {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %d", sep, sys, s.Records[sys])
	}
	fmt.Fprintf(&b, "; %s %d", SystemApps, s.Records[SystemApps])
	b.WriteString(" records.\nPlanted drift:\n")
	for _, c := range s.Cases() {
		if len(c.Keys) == 0 {
			continue
		}
		first := c.Keys[0]
		fmt.Fprintf(&b, "  %-18s ×%d  e.g. %s", c.Name, len(c.Keys), first)
		if note := s.Notes[first]; note != "" {
			fmt.Fprintf(&b, ": %s", note)
		}
		fmt.Fprintf(&b, " → %s\n", c.Expect)
	}
	fmt.Fprintf(&b, "Planted for the reports: application %s retired under %d live NHIs (orphans), %d NHIs reused (hygiene), %d stale rotations (stale).\n",
		s.RetiredApp, len(s.RetiredAppNHIs), len(s.Reused), len(s.StaleRotations))
	return b.String()
}

// record adds the drifted accounts of p to s.
func (s *Scenario) record(p *population) {
	s.Notes = map[string]string{}
	for _, a := range p.accounts {
		if a.drift == caseNone {
			continue
		}
		list := s.keys(a.drift)
		*list = append(*list, a.key())
		s.Notes[a.key()] = a.note
	}
	s.RetiredApp = p.retiredApp
	s.Lacks = map[string][]string{}
	for _, a := range p.accounts {
		live := (a.idp != nil || a.cmdb != nil) && goldenLifecycle(a) != nhisync.LifecycleDecommissioned
		if !live {
			continue
		}
		s.Live++
		for sys, held := range map[string]bool{SystemIDP: a.idp != nil, SystemCMDB: a.cmdb != nil, SystemCatalog: a.catalog != nil, SystemPolicy: a.policy != nil} {
			if !held {
				s.Lacks[sys] = append(s.Lacks[sys], a.key())
			}
		}
		if a.cmdb != nil && a.cmdb.App == p.retiredApp {
			s.RetiredAppNHIs = append(s.RetiredAppNHIs, a.key())
		}
		if a.reused {
			s.Reused = append(s.Reused, a.key())
			s.Notes[a.key()] = "catalog used_by " + strings.Join(a.catalog.UsedBy, ", ")
		}
		if a.idp != nil && a.idp.RotatedAt.Before(p.now.Add(-StaleRotation)) {
			s.StaleRotations = append(s.StaleRotations, a.key())
		}
		if a.drift == caseOrphan {
			s.LiveOrphans = append(s.LiveOrphans, a.key())
		}
	}
	// The cases that can make nhisync overwrite a non-empty value in each
	// system. A name variant may be settled either way, so it counts for
	// every system holding the account.
	bound := map[string]int{}
	for _, a := range p.accounts {
		switch a.drift {
		case caseOwnerConflict:
			bound[SystemCatalog]++
		case caseLabelMerge:
			bound[SystemCMDB]++
			bound[SystemCatalog]++
		case caseInvalidOwner, caseDecommissioned:
			// An invalid owner is quarantined and the cmdb not repaired;
			// counted all the same, in case the engine repairs it.
			bound[SystemCMDB]++
		case casePolicyApproval:
			bound[SystemPolicy]++
		case caseEntitlementDrift:
			bound[SystemIDP]++
			bound[SystemPolicy]++
		case caseNameVariant:
			for sys, present := range map[string]bool{SystemIDP: a.idp != nil, SystemCMDB: a.cmdb != nil, SystemCatalog: a.catalog != nil, SystemPolicy: a.policy != nil} {
				if present {
					bound[sys]++
				}
			}
		}
	}
	s.OverwriteBound = map[string]int{}
	for _, sys := range Systems {
		s.OverwriteBound[sys] = bound[sys]
	}
}
