package report

// Framework is one control a finding is evidence about: an OWASP
// Non-Human Identities Top 10 (2025) risk or a NIST Cybersecurity
// Framework 2.0 subcategory.
type Framework struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// Frameworks is the one list of framework ids findings may carry. Every
// id a finding type names must be here (a test checks it), so no id is
// typed twice.
var Frameworks = []Framework{
	{"OWASP-NHI1", "Improper Offboarding"},
	{"OWASP-NHI2", "Secret Leakage"},
	{"OWASP-NHI3", "Vulnerable Third-Party NHI"},
	{"OWASP-NHI4", "Insecure Authentication"},
	{"OWASP-NHI5", "Overprivileged NHI"},
	{"OWASP-NHI6", "Insecure Cloud Deployment Configurations"},
	{"OWASP-NHI7", "Long-Lived Secrets"},
	{"OWASP-NHI8", "Environment Isolation"},
	{"OWASP-NHI9", "NHI Reuse"},
	{"OWASP-NHI10", "Human Use of NHI"},
	{"NIST-CSF-GV.RR-02", "Roles, responsibilities and authorities related to cybersecurity risk management are established, communicated, understood and enforced"},
	{"NIST-CSF-ID.AM-02", "Inventories of software, services and systems managed by the organization are maintained"},
	{"NIST-CSF-ID.AM-07", "Inventories of data and corresponding metadata for designated data types are maintained"},
	{"NIST-CSF-ID.AM-08", "Systems, hardware, software, services and data are managed throughout their life cycles"},
	{"NIST-CSF-PR.AA-01", "Identities and credentials for authorized users, services and hardware are managed by the organization"},
	{"NIST-CSF-PR.AA-05", "Access permissions, entitlements and authorizations are defined in a policy, managed, enforced and reviewed, and incorporate the principles of least privilege and separation of duties"},
	{"NIST-CSF-PR.IR-01", "Networks and environments are protected from unauthorized logical access and usage"},
	{"NIST-CSF-PR.PS-01", "Configuration management practices are established and applied"},
}

// FrameworkTitle returns the title of a framework id ("" if unknown).
func FrameworkTitle(id string) string {
	for _, f := range Frameworks {
		if f.ID == id {
			return f.Title
		}
	}
	return ""
}

// Type is one kind of finding: what it says, which report lists it, how
// severe it is and which framework ids it is evidence for.
type Type struct {
	Name       string   `json:"type"`
	Report     string   `json:"report"`
	Severity   Severity `json:"severity"`
	Frameworks []string `json:"frameworks"`
	// Means says in a sentence what the finding means (README, evidence).
	Means string `json:"means"`
}

// Finding types, by report. The framework ids are the mapping the README
// shows; change them here only.
var (
	TypeNoOwner = &Type{"no-owner", "orphans", High,
		[]string{"OWASP-NHI1", "NIST-CSF-GV.RR-02", "NIST-CSF-PR.AA-01"},
		"no system names an owner for the NHI"}
	TypeUnknownOwner = &Type{"unknown-owner", "orphans", Medium,
		[]string{"OWASP-NHI1", "NIST-CSF-GV.RR-02", "NIST-CSF-PR.AA-01"},
		"the owner is not a known person record"}
	TypeDepartedOwner = &Type{"departed-owner", "orphans", High,
		[]string{"OWASP-NHI1", "NIST-CSF-GV.RR-02", "NIST-CSF-PR.AA-01"},
		"the owner's person record is retired or departed"}
	TypeRetiredApplication = &Type{"retired-application", "orphans", High,
		[]string{"OWASP-NHI1", "NIST-CSF-ID.AM-08", "NIST-CSF-PR.AA-01"},
		"the NHI's application is decommissioned while the NHI stays active"}

	TypeStaleValue = &Type{"stale-value", "stale", Medium,
		[]string{"NIST-CSF-ID.AM-07"},
		"the system that set a field has not been seen holding it within the field's stale_after"}
	TypeMaxAge = &Type{"max-age", "stale", High,
		[]string{"OWASP-NHI7", "NIST-CSF-PR.AA-01"},
		"a time field (such as last_rotated) is older than its max_age: a long-lived secret"}
	TypeSystemUnread = &Type{"system-unread", "stale", High,
		[]string{"NIST-CSF-ID.AM-07", "NIST-CSF-ID.AM-02"},
		"a system has not been read successfully for longer than ten times its poll interval"}

	TypeDrift = &Type{"drift", "drift", Medium,
		[]string{"NIST-CSF-ID.AM-07", "NIST-CSF-PR.PS-01"},
		"a system holds another value than the golden one, and why it is not fixed yet"}

	TypeSystemCoverage = &Type{"system-coverage", "coverage", Low,
		[]string{"NIST-CSF-ID.AM-02", "NIST-CSF-ID.AM-07"},
		"a system lacks golden records of the kind it holds"}
	TypeUnmatched = &Type{"unmatched", "coverage", High,
		[]string{"OWASP-NHI1", "NIST-CSF-ID.AM-02", "NIST-CSF-PR.AA-01"},
		"an NHI that no registry knows: its system may not create golden records (shadow IT)"}
	TypeDisputed = &Type{"disputed", "coverage", Medium,
		[]string{"NIST-CSF-ID.AM-07", "NIST-CSF-PR.AA-01"},
		"a system's record matches more than one golden record"}
	TypeEmptyField = &Type{"empty-field", "coverage", Low,
		[]string{"NIST-CSF-ID.AM-07"},
		"a field has no value in any system for some records"}

	TypeReuse = &Type{"reuse", "hygiene", Medium,
		[]string{"OWASP-NHI9", "NIST-CSF-PR.AA-01", "NIST-CSF-PR.AA-05"},
		"one NHI is used by several applications"}
	TypeCrossEnvironment = &Type{"cross-environment", "hygiene", High,
		[]string{"OWASP-NHI8", "NIST-CSF-PR.IR-01", "NIST-CSF-PR.AA-05"},
		"one NHI is used in several environments"}
	TypeHumanUse = &Type{"human-use", "hygiene", High,
		[]string{"OWASP-NHI10", "NIST-CSF-PR.AA-01", "NIST-CSF-PR.AA-05"},
		"an NHI is marked as used interactively by a person"}
	TypeOverprivileged = &Type{"overprivileged", "hygiene", High,
		[]string{"OWASP-NHI5", "NIST-CSF-PR.AA-05"},
		"the record matches reports.hygiene.overprivileged"}
)

// Types lists every finding type in report order.
var Types = []*Type{
	TypeNoOwner, TypeUnknownOwner, TypeDepartedOwner, TypeRetiredApplication,
	TypeStaleValue, TypeMaxAge, TypeSystemUnread,
	TypeDrift,
	TypeSystemCoverage, TypeUnmatched, TypeDisputed, TypeEmptyField,
	TypeReuse, TypeCrossEnvironment, TypeHumanUse, TypeOverprivileged,
}
