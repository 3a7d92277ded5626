package quickstart

// configYAML is the workspace's nhisync.yaml: the four demo systems and the
// rules that decide between them, commented for someone reading their first
// nhisync config. Relative paths are taken against the file's directory.
const configYAML = `# nhisync quickstart workspace.
#
# Four systems below hold governance records of the same non-human
# identities (service accounts, API keys, OAuth apps, AI agents) and
# disagree about some of them. This file says how nhisync recognises one
# identity across systems, which system may set which field, and what
# happens when they disagree. Run "nhisync check" to validate it and
# "nhisync plan" to see what a sync would do; edit the files under systems/
# and sync again to watch a change travel.
version: 1

# Where nhisync keeps golden records, shadows, conflicts, approvals and the
# audit log.
store: sqlite:./nhisync-data/nhisync.db

audit:
  # ed25519 key that signs audit checkpoints; created on the first run.
  signing_key: ./nhisync-data/audit.key

kinds:
  service_account:
    # Records with the same platform and name (trimmed, case-insensitive)
    # are one identity, whichever system holds them.
    match: [platform, name]
    # Only these systems may introduce an identity nhisync has not seen; a
    # record elsewhere that matches nothing is reported as unmatched.
    create_from: [idp, cmdb]
    # An identity that vanishes from the identity provider is decommissioned.
    retire_from: [idp]
    fields:
      name:
        type: string
        required: true
      platform:
        type: string
        required: true
      owner:
        type: string
        # Highest first: the CMDB outranks the catalog. A catalog value may
        # replace the CMDB's only once the CMDB has not been seen holding it
        # for 90 days.
        authority: [cmdb, catalog]
        stale_after: 2160h
      application:
        type: string
        authority: [cmdb]
        # Looked up in the application register (kind application below):
        # "nhisync report orphans" lists identities whose application is
        # decommissioned while they stay active.
      classification:
        type: set
        # Labels added in any system are kept: the union wins.
        resolve: merge
      lifecycle:
        type: enum
        values: [active, rotation_due, suspended, decommissioned]
        # Concurrent changes fail closed: the value latest in values wins,
        # so a decommission beats a reactivation.
        resolve: strictest
      entitlements:
        type: set
        resolve: merge
        # Access grants: a revocation beats a concurrent grant.
        wins: remove
        authority: [idp, policy]
      last_rotated:
        type: time
        authority: [idp]
        # A rotation older than this is a long-lived secret, listed by
        # "nhisync report stale" (it never changes a decision).
        max_age: 2160h
      used_by:
        # Applications that use the identity, as the catalog knows them;
        # more than one is NHI reuse ("nhisync report hygiene").
        type: set
        resolve: merge
      policy_state:
        type: string
        authority: [catalog]
        # The catalog decides; writing it to the policy engine waits for a
        # person to approve (see "nhisync approvals").
        approve_to: [policy]
    rules:
      # CEL over the record's fields. A change that fails a rule is
      # quarantined: not applied, not propagated (see "nhisync quarantine").
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')

  application:
    # The application register: one record per business application.
    match: [name]
    create_from: [apps]
    fields:
      name:
        type: string
      team:
        type: string
      lifecycle:
        type: enum
        values: [active, decommissioned]

# Each system maps canonical fields (left) to its own names (right).
# poll says how often "nhisync serve" reads a system; "nhisync report
# stale" lists a system not read for ten times as long.
# Columns and keys that are not mapped are kept untouched.
systems:
  # Identity provider: a SQLite table; updated_at lets nhisync read only
  # what changed since the last pass.
  idp:
    connector: sql
    kind: service_account
    dsn: "sqlite:./systems/idp.db"
    table: service_accounts
    id: id
    updated_column: updated_at
    poll: 1h
    fields:
      name: name
      platform: platform
      lifecycle: status
      entitlements: scopes
      last_rotated: rotated_at

  # CMDB export: a CSV file with a header row.
  cmdb:
    connector: file
    kind: service_account
    path: ./systems/cmdb.csv
    id: sys_id
    poll: 1h
    fields:
      name: name
      platform: platform
      owner: owned_by
      application: app
      lifecycle: status
      classification: tags

  # Data catalog: a YAML list. It has no id column, so a record's id is
  # its match fields joined by "/" (platform/name).
  catalog:
    connector: file
    kind: service_account
    path: ./systems/catalog.yaml
    poll: 1h
    fields:
      name: name
      platform: platform
      owner: steward
      classification: tags
      policy_state: policy
      used_by: used_by

  # Policy engine: a JSON array of objects.
  policy:
    connector: file
    kind: service_account
    path: ./systems/policy.json
    id: id
    poll: 1h
    fields:
      name: account
      platform: platform
      entitlements: grants
      policy_state: state

  # Application register: a CSV file of the applications, and which are
  # decommissioned.
  apps:
    connector: file
    kind: application
    path: ./systems/apps.csv
    id: name
    poll: 1h
    fields:
      name: name
      team: team
      lifecycle: status
`
