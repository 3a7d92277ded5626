// Package ocsf writes nhisync's audit log as OCSF 1.x events (Open
// Cybersecurity Schema Framework), one JSON object per line, for a SIEM:
// `nhisync audit export --format ocsf`.
//
// Every audit entry becomes one event of class Entity Management (3004,
// category Identity & Access Management): the managed entity is the NHI
// record (or, for system events, the system), and the activity follows
// the nhisync action (see [Activities]); a record.created entry's links
// (system → native id) and first values are in the entity's data too. The
// nhisync entry itself — seq, hashes, field, system, old and new values,
// links and first values — rides in `unmapped.nhisync`,
// so a SIEM can tie an event back to the verifiable log. Values are the
// audit log's own: a sensitive field's values are already only their
// SHA-256 there, and stay so here.
package ocsf

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
)

// Version is the OCSF schema version the events follow.
const Version = "1.3.0"

// Class is the OCSF class every event belongs to.
const (
	ClassUID     = 3004
	ClassName    = "Entity Management"
	CategoryUID  = 3
	CategoryName = "Identity & Access Management"
)

// Activity is an OCSF Entity Management activity.
type Activity struct {
	ID   int
	Name string
}

// Entity Management activities used.
var (
	Create     = Activity{1, "Create"}
	Read       = Activity{2, "Read"}
	Update     = Activity{3, "Update"}
	Deactivate = Activity{11, "Deactivate"}
	Other      = Activity{99, "Other"}
)

// Activities maps each nhisync audit action to its OCSF activity and
// whether the activity failed. Actions not listed are Other, success.
var Activities = map[string]struct {
	Activity Activity
	Failed   bool
}{
	nhisync.ActRecordCreated:     {Create, false},
	nhisync.ActRecordProvisioned: {Create, false},
	nhisync.ActObserved:          {Read, false},
	nhisync.ActAgreed:            {Read, false},
	nhisync.ActAccepted:          {Update, false},
	nhisync.ActMerged:            {Update, false},
	nhisync.ActConflictResolved:  {Update, false},
	nhisync.ActWriteApplied:      {Update, false},
	nhisync.ActRefused:           {Update, true},
	nhisync.ActQuarantined:       {Update, true},
	nhisync.ActWriteFailed:       {Update, true},
	nhisync.ActWriteStale:        {Update, true},
	nhisync.ActApprovalRejected:  {Update, true},
	nhisync.ActRecordRetired:     {Deactivate, false},
}

// Event is one OCSF Entity Management event.
type Event struct {
	ClassUID     int      `json:"class_uid"`
	ClassName    string   `json:"class_name"`
	CategoryUID  int      `json:"category_uid"`
	CategoryName string   `json:"category_name"`
	ActivityID   int      `json:"activity_id"`
	ActivityName string   `json:"activity_name"`
	TypeUID      int      `json:"type_uid"`
	TypeName     string   `json:"type_name"`
	Time         int64    `json:"time"`
	SeverityID   int      `json:"severity_id"`
	Severity     string   `json:"severity"`
	StatusID     int      `json:"status_id"`
	Status       string   `json:"status"`
	Message      string   `json:"message"`
	Comment      string   `json:"comment,omitempty"`
	Metadata     Metadata `json:"metadata"`
	Actor        Actor    `json:"actor"`
	Entity       Entity   `json:"entity"`
	Unmapped     struct {
		NHISync *nhisync.AuditEntry `json:"nhisync"`
	} `json:"unmapped"`
}

// Metadata is OCSF's metadata object.
type Metadata struct {
	Version      string  `json:"version"`
	Product      Product `json:"product"`
	UID          string  `json:"uid"`
	LogName      string  `json:"log_name"`
	EventCode    string  `json:"event_code"`
	OriginalTime string  `json:"original_time"`
}

// Product names nhisync.
type Product struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

// Actor is who acted: a person or a system.
type Actor struct {
	User User `json:"user"`
}

// User is OCSF's user object.
type User struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	TypeID int    `json:"type_id"`
}

// Entity is OCSF's managed entity: the NHI record or the system.
type Entity struct {
	UID  string         `json:"uid,omitempty"`
	Name string         `json:"name"`
	Type string         `json:"type"`
	Data map[string]any `json:"data,omitempty"`
}

// FromEntry maps one audit entry to an OCSF event.
func FromEntry(e *nhisync.AuditEntry) *Event {
	m, ok := Activities[e.Action]
	if !ok {
		m.Activity = Other
	}
	ev := &Event{ClassUID: ClassUID, ClassName: ClassName, CategoryUID: CategoryUID, CategoryName: CategoryName,
		ActivityID: m.Activity.ID, ActivityName: m.Activity.Name,
		TypeUID: ClassUID*100 + m.Activity.ID, TypeName: ClassName + ": " + m.Activity.Name,
		Time: e.Time.UnixMilli(), SeverityID: 1, Severity: "Informational", StatusID: 1, Status: "Success",
		Comment: e.Reason,
		Metadata: Metadata{Version: Version, Product: Product{Name: "nhisync", VendorName: "nhisync"},
			UID: fmt.Sprint(e.Seq), LogName: "nhisync audit", EventCode: e.Action, OriginalTime: e.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")},
	}
	if m.Failed {
		ev.StatusID, ev.Status, ev.SeverityID, ev.Severity = 2, "Failure", 2, "Low"
	}
	if e.Action == nhisync.ActSystemDegraded || e.Action == nhisync.ActWriteFailed {
		ev.SeverityID, ev.Severity = 3, "Medium"
	}
	actor := e.Actor
	if actor == "" {
		actor = "nhisync"
	}
	if nhisync.IsPerson(actor) {
		ev.Actor.User = User{Name: strings.TrimPrefix(actor, nhisync.PersonPrefix), Type: "User", TypeID: 1}
	} else {
		ev.Actor.User = User{Name: actor, Type: "System", TypeID: 3}
	}
	switch {
	case e.Record != "":
		ev.Entity = Entity{Name: e.Record, Type: e.Kind}
		if e.RecordID != 0 {
			ev.Entity.UID = e.Kind + "/" + e.Record
		}
	case e.System != "":
		ev.Entity = Entity{Name: e.System, Type: "system"}
	default:
		ev.Entity = Entity{Name: "nhisync", Type: "service"}
	}
	data := map[string]any{}
	for k, v := range map[string]string{"field": e.Field, "system": e.System, "old": e.Old.String(), "new": e.New.String()} {
		if v != "" {
			data[k] = v
		}
	}
	// A record.created entry also carries the links made with the new
	// record and its fields' first values (nhisync.AuditEntry.Expand).
	if len(e.Links) > 0 {
		links := make(map[string]string, len(e.Links))
		for _, l := range e.Links {
			links[l.System] = l.ID
		}
		data["links"] = links
	}
	if len(e.Fields) > 0 {
		fields := make(map[string]string, len(e.Fields))
		for _, f := range e.Fields {
			fields[f.Field] = f.Value.String()
		}
		data["fields"] = fields
	}
	if len(data) > 0 {
		ev.Entity.Data = data
	}
	ev.Message = message(e)
	c := *e
	c.Time = c.Time.UTC()
	ev.Unmapped.NHISync = &c
	return ev
}

// message says the event in a sentence.
func message(e *nhisync.AuditEntry) string {
	var b strings.Builder
	b.WriteString(e.Action)
	if e.Record != "" {
		fmt.Fprintf(&b, " %s/%s", e.Kind, e.Record)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " %s", e.Field)
	}
	if e.System != "" {
		fmt.Fprintf(&b, " in %s", e.System)
	}
	if !e.New.IsZero() {
		fmt.Fprintf(&b, ": %q", e.New.String())
	}
	for i, l := range e.Links {
		if i == 0 {
			b.WriteString("; linked in ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %q", l.System, l.ID)
	}
	return b.String()
}

// Export writes the entries with from <= seq < to (to 0: to the end) as
// OCSF events, one JSON object per line, in seq order. Errors: EINVALID
// for a bad range, EINTERNAL when w fails, and the store's codes.
func Export(ctx context.Context, log audit.Log, w io.Writer, from, to int64) error {
	if from < 0 || to < 0 || (to != 0 && to < from) {
		return nhisync.Errorf(nhisync.EINVALID, "entries %d to %d: need 0 <= FROM <= TO (TO 0 for the end)", from, to)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := log.ScanAudit(ctx, from, to, func(e *nhisync.AuditEntry, _ []byte) error {
		if err := enc.Encode(FromEntry(e)); err != nil {
			return nhisync.Errorf(nhisync.EINTERNAL, "writing the OCSF export failed: %v", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return nhisync.Errorf(nhisync.EINTERNAL, "writing the OCSF export failed: %v", err)
	}
	return nil
}
