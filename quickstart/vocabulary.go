package quickstart

// The word lists the demo population is drawn from. They are plain data so
// the generator stays deterministic: only the random source picks from them.

// platforms are weighted: a mid-size company runs most workloads on AWS.
var platforms = []struct {
	name   string
	weight int
}{
	{"aws", 30}, {"gcp", 20}, {"azure", 15}, {"k8s", 20}, {"github", 15},
}

// application is a business application and what identities of it carry.
type application struct {
	name       string // the cmdb "app" value
	team       string // team alias, also the owner's mailbox prefix
	costCenter string
}

var applications = []application{
	{"payments", "payments-team", "CC-1010"},
	{"billing", "payments-team", "CC-1010"},
	{"checkout", "storefront-team", "CC-1020"},
	{"orders", "storefront-team", "CC-1020"},
	{"inventory", "supply-chain", "CC-1030"},
	{"shipping", "supply-chain", "CC-1030"},
	{"ledger", "finance-eng", "CC-1040"},
	{"fraud", "risk-eng", "CC-1050"},
	{"risk", "risk-eng", "CC-1050"},
	{"search", "discovery-team", "CC-1060"},
	{"recommendations", "discovery-team", "CC-1060"},
	{"analytics", "data-eng", "CC-1070"},
	{"reporting", "data-eng", "CC-1070"},
	{"data-warehouse", "data-eng", "CC-1070"},
	{"ml-platform", "ml-eng", "CC-1080"},
	{"marketing", "growth-team", "CC-1090"},
	{"crm", "growth-team", "CC-1090"},
	{"support", "cx-eng", "CC-1100"},
	{"notifications", "platform-team", "CC-1110"},
	{"identity", "security-eng", "CC-1120"},
	{"gateway", "platform-team", "CC-1110"},
	{"platform-ci", "devex-team", "CC-1130"},
	{"backup", "sre-team", "CC-1140"},
}

// roles end an account name and tell what sort of NHI it is.
var roles = []struct {
	suffix  string
	nhiType string // "" means service_account (workload on k8s)
}{
	{"bot", ""}, {"deployer", ""}, {"etl", ""}, {"nightly", ""}, {"sync", ""},
	{"exporter", ""}, {"importer", ""}, {"reader", ""}, {"writer", ""},
	{"backup-agent", ""}, {"scanner", ""}, {"webhook", ""}, {"runner", ""},
	{"worker", ""}, {"migrator", ""}, {"cron", ""}, {"svc", ""}, {"monitor", ""},
	{"api-key", "api_key"}, {"oauth-app", "oauth_app"}, {"token", "token"},
	{"ai-agent", "ai_agent"}, {"copilot-agent", "ai_agent"},
}

// exemplar accounts always exist, each carrying one planted drift, so the
// walkthrough can name the same accounts whatever the seed.
var exemplars = []struct {
	platform, name, app, nhiType string
	drift                        driftCase
}{
	{"aws", "payments-bot", "payments", "service_account", caseNameVariant},
	{"github", "ci-deployer", "platform-ci", "service_account", caseEntitlementDrift},
	{"gcp", "etl-nightly", "data-warehouse", "service_account", caseOwnerConflict},
	{"azure", "backup-agent", "backup", "service_account", caseDecommissioned},
	{"gcp", "ml-feature-store", "ml-platform", "service_account", caseLabelMerge},
	{"aws", "ai-support-agent", "support", "ai_agent", caseOrphan},
}

// unknownNames are accounts no registry knows: they turn up only in the
// policy engine or only in the catalog.
var unknownNames = []struct{ name, nhiType string }{
	{"legacy-sftp-sync", "service_account"}, {"tmp-migration-bot", "service_account"},
	{"old-jenkins-token", "token"}, {"contractor-export-key", "api_key"},
	{"hackathon-oauth-app", "oauth_app"}, {"poc-llm-agent", "ai_agent"},
	{"shared-admin-key", "api_key"}, {"unused-webhook-bot", "service_account"},
	{"retired-dwh-loader", "service_account"},
}

var firstNames = []string{
	"maria", "james", "aisha", "wei", "olga", "carlos", "priya", "tom",
	"fatima", "lukas", "yuki", "noah", "amara", "diego", "sofia", "ethan",
	"leila", "marco", "hana", "samuel",
}

var lastNames = []string{
	"garcia", "smith", "khan", "chen", "ivanova", "silva", "patel", "nguyen",
	"okafor", "muller", "tanaka", "brown", "mensah", "lopez", "rossi",
	"kim", "haddad", "novak", "cohen", "berg",
}

// entitlements per platform, in the shape the IdP and the policy engine
// both use.
var entitlements = map[string][]string{
	"aws":    {"s3:read", "s3:write", "sqs:send", "sqs:receive", "dynamodb:read", "dynamodb:write", "kms:decrypt", "secretsmanager:read", "bedrock:invoke", "db:read", "db:write"},
	"gcp":    {"storage:read", "storage:write", "bigquery:read", "bigquery:write", "pubsub:publish", "pubsub:subscribe", "secretmanager:access", "vertexai:predict", "db:read", "db:write"},
	"azure":  {"keyvault:read", "blob:read", "blob:write", "servicebus:send", "openai:invoke", "db:read", "db:write"},
	"k8s":    {"pods:get", "pods:list", "deployments:patch", "secrets:get", "configmaps:read", "jobs:create"},
	"github": {"repo:read", "repo:write", "repo:admin", "actions:write", "packages:read", "packages:write", "issues:write"},
}

// Classification labels: one sensitivity level, plus regulated-data tags.
var (
	levels       = []string{"public", "internal", "internal", "confidential"}
	regulatedTag = []string{"pii", "pci"}
)

// Lifecycle states, weighted: most identities are active.
var lifecycles = []struct {
	state  string
	weight int
}{
	{"active", 80}, {"rotation_due", 12}, {"suspended", 6}, {"decommissioned", 2},
}

// policyStates are what the policy engine says about an identity.
var policyStates = []string{"enforced", "enforced", "enforced", "monitor", "exempt"}

var environments = []string{"prod", "prod", "prod", "staging", "dev"}

var creators = []string{"terraform", "terraform", "crossplane", "github-actions", "okta-workflows", "console"}

var cmdbNotes = []string{
	"", "", "", "", "", "rotates via vault", "used by nightly batch",
	"migrated from on-prem", "review with owner next quarter", "shared with staging",
}

// invalidOwners are what people type into a CMDB owner cell by mistake.
var invalidOwners = []string{"not-an-email", "bob at example", "payments team", "TBD", "j.smith(at)example.com"}
