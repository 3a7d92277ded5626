package rule

import (
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// testKind is a service_account-like kind with a field of every type.
func testKind() *nhisync.Kind {
	fields := []*nhisync.Field{
		{Name: "name", Type: nhisync.TypeString},
		{Name: "platform", Type: nhisync.TypeString},
		{Name: "owner", Type: nhisync.TypeString},
		{Name: "age", Type: nhisync.TypeInt},
		{Name: "privileged", Type: nhisync.TypeBool},
		{Name: "last_rotated", Type: nhisync.TypeTime},
		{Name: "lifecycle", Type: nhisync.TypeEnum, Values: []string{"active", "rotation_due", "suspended", "decommissioned"}},
		{Name: "classification", Type: nhisync.TypeSet},
		{Name: "application", Type: nhisync.TypeRef, To: "application"},
		{Name: "reads", Type: nhisync.TypeRefs, To: "dataset"},
	}
	k := &nhisync.Kind{Name: "service_account", Match: []string{"platform", "name"}, Fields: map[string]*nhisync.Field{}}
	for _, f := range fields {
		k.Fields[f.Name] = f
		k.FieldNames = append(k.FieldNames, f.Name)
	}
	return k
}

// record returns the field values of a typical record.
func record() map[string]nhisync.Value {
	return map[string]nhisync.Value{
		"name":           nhisync.Str("payments-bot"),
		"platform":       nhisync.Str("aws"),
		"owner":          nhisync.Str("alice@example.com"),
		"age":            nhisync.Str("42"),
		"privileged":     nhisync.Str("true"),
		"last_rotated":   nhisync.Str("2026-01-02T15:04:05Z"),
		"lifecycle":      nhisync.Str("active"),
		"classification": nhisync.SetOf("pii", "pci"),
		"application":    nhisync.Str("payments"),
		"reads":          nhisync.SetOf("warehouse/orders"),
	}
}

func TestCheck(t *testing.T) {
	full := record()
	empty := map[string]nhisync.Value{}
	tests := []struct {
		name   string
		expr   string
		fields map[string]nhisync.Value
		system string
		want   bool
	}{
		{"string equality", `platform == "aws"`, full, "", true},
		{"string inequality", `platform == "gcp"`, full, "", false},
		{"matches email", `owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')`, full, "", true},
		{"matches email fails", `owner.matches('^[^@\\s]+@[^@\\s]+$')`, map[string]nhisync.Value{"owner": nhisync.Str("alice")}, "", false},
		{"empty string is zero", `owner == ""`, empty, "", true},
		{"int compare", `age > 40`, full, "", true},
		{"int zero", `age == 0`, empty, "", true},
		{"bool", `privileged`, full, "", true},
		{"bool zero", `!privileged`, empty, "", true},
		{"bool canonicalized", `privileged`, map[string]nhisync.Value{"privileged": nhisync.Str("yes")}, "", true},
		{"time compare", `last_rotated > timestamp("2026-01-01T00:00:00Z")`, full, "", true},
		{"time zero is epoch", `last_rotated == timestamp(0)`, empty, "", true},
		{"time accessor", `last_rotated.getFullYear() == 2026`, full, "", true},
		{"enum as string", `lifecycle in ["active", "rotation_due"]`, full, "", true},
		{"set membership", `"pci" in classification`, full, "", true},
		{"set membership false", `"secret" in classification`, full, "", false},
		{"set exists", `classification.exists(c, c == "pii")`, full, "", true},
		{"set all", `classification.all(c, c.size() == 3)`, full, "", true},
		{"set size", `size(classification) == 2`, full, "", true},
		{"set zero is empty", `classification == []`, empty, "", true},
		{"scalar in set field is one element", `classification == ["pii"]`, map[string]nhisync.Value{"classification": nhisync.Str("pii")}, "", true},
		{"sets extension", `sets.contains(classification, ["pii"])`, full, "", true},
		{"lists extension", `classification.sort() == ["pci", "pii"]`, full, "", true},
		{"strings extension", `owner.lowerAscii().endsWith("@example.com") && name.split("-").size() == 2`, full, "", true},
		{"ref as string", `application.startsWith("pay")`, full, "", true},
		{"refs as list", `reads.exists(r, r.startsWith("warehouse/"))`, full, "", true},
		{"system", `system == "cmdb" || owner != ""`, empty, "cmdb", true},
		{"system empty by default", `system == ""`, empty, "", true},
		{"cross-field", `lifecycle != "decommissioned" || !privileged`, full, "", true},
		{"leading dot", `.owner.endsWith("@example.com")`, full, "", true},
		{"leading dot fails", `.owner.endsWith("@example.com")`, map[string]nhisync.Value{"owner": nhisync.Str("alice")}, "", false},
		{"leading dot system", `.system == "cmdb"`, empty, "cmdb", true},
		{"leading dot past a comprehension's variable", `classification.exists(owner, owner == .owner)`,
			map[string]nhisync.Value{"owner": nhisync.Str("pii"), "classification": nhisync.SetOf("pci", "pii")}, "", true},
		{"leading dot past a comprehension's variable fails", `classification.exists(owner, owner == .owner)`,
			map[string]nhisync.Value{"owner": nhisync.Str("x"), "classification": nhisync.SetOf("pci", "pii")}, "", false},
	}
	k := testKind()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Compile(k, "r", tt.expr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := r.Check(tt.fields, tt.system)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckConversionErrors(t *testing.T) {
	tests := []struct {
		expr   string
		field  string
		value  nhisync.Value
		substr string
	}{
		{`age > 1`, "age", nhisync.Str("abc"), "field age: the value is not an integer"},
		{`privileged`, "privileged", nhisync.Str("maybe"), "field privileged: the value is not true or false"},
		{`last_rotated > timestamp(0)`, "last_rotated", nhisync.Str("yesterday"), "field last_rotated: the value is not an RFC 3339 time"},
		{`owner == ""`, "owner", nhisync.SetOf("a", "b"), "field owner: expected a single string, got a set"},
		// Short-circuiting does not hide a bad value.
		{`true || age > 1`, "age", nhisync.Str("x"), "not an integer"},
	}
	k := testKind()
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			r, err := Compile(k, "conv", tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Check(map[string]nhisync.Value{tt.field: tt.value}, "")
			if err == nil {
				t.Fatal("Check succeeded, want an error")
			}
			if nhisync.ErrorCode(err) != nhisync.EINVALID {
				t.Errorf("code = %q, want %q", nhisync.ErrorCode(err), nhisync.EINVALID)
			}
			msg := nhisync.ErrorMessage(err)
			if !strings.Contains(msg, tt.substr) || !strings.Contains(msg, `rule "conv"`) {
				t.Errorf("message %q does not name the rule and contain %q", msg, tt.substr)
			}
			if v := tt.value.Text(); v != "" && strings.Contains(msg, v) {
				t.Errorf("message %q leaks the value %q", msg, v)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, expr string
		substrs    []string
	}{
		{"syntax", `owner ==`, []string{`rule "bad"`, "invalid CEL", "column 9"}},
		{"misspelt field", `ownr == ""`, []string{`undeclared reference to 'ownr'`, `did you mean 'owner'?`}},
		{"unknown name", `zzzzzzzzzzzz == ""`, []string{"undeclared reference", "the variables are name, platform"}},
		{"type mismatch", `age == "x"`, []string{"found no matching overload"}},
		{"non-bool string", `owner`, []string{"must be true or false", "string"}},
		{"non-bool int", `age + 1`, []string{"must be true or false", "int"}},
		{"non-bool list", `classification`, []string{"must be true or false", "list(string)"}},
		{"empty", `  `, []string{"empty"}},
		{"several errors", `ownr == "" && agee > 1`, []string{"column 1:", "'owner'", "column 15:", "'age'"}},
	}
	k := testKind()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(k, "bad", tt.expr)
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			if nhisync.ErrorCode(err) != nhisync.EINVALID {
				t.Errorf("code = %q, want %q", nhisync.ErrorCode(err), nhisync.EINVALID)
			}
			msg := nhisync.ErrorMessage(err)
			if strings.Contains(msg, "\n") {
				t.Errorf("message spans lines: %q", msg)
			}
			for _, s := range tt.substrs {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
		})
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		expr        string
		want        []string
		readsSystem bool
	}{
		{`owner == ""`, []string{"owner"}, false},
		{`owner == "" || platform == "aws"`, []string{"platform", "owner"}, false},
		{`"pci" in classification`, []string{"classification"}, false},
		// c is bound by the comprehension; owner inside it is free.
		{`classification.exists(c, c == owner)`, []string{"owner", "classification"}, false},
		// A comprehension variable shadowing a field is not a reference to it.
		{`classification.exists(owner, owner == "pii")`, []string{"classification"}, false},
		{`classification.map(x, x.upperAscii()).size() > age`, []string{"age", "classification"}, false},
		{`system == "cmdb"`, nil, true},
		{`owner == "" || system != "cmdb"`, []string{"owner"}, true},
		// A comprehension variable named system is not the variable.
		{`classification.exists(system, system == "pii")`, []string{"classification"}, false},
		{`true`, nil, false},
		{`{"a": name}["a"] == platform`, []string{"name", "platform"}, false},
		{`[lifecycle, application][0] != ""`, []string{"lifecycle", "application"}, false},
		{`has({"x": 1}.x) && reads.size() == 0`, []string{"reads"}, false},
		// A leading dot names the variable, even where a comprehension's
		// has its name.
		{`.owner == ""`, []string{"owner"}, false},
		{`classification.exists(owner, owner == .owner)`, []string{"owner", "classification"}, false},
		{`.system == "cmdb"`, nil, true},
	}
	k := testKind()
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			r, err := Compile(k, "f", tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Fields(); !slices.Equal(got, tt.want) {
				t.Errorf("Fields() = %q, want %q", got, tt.want)
			}
			if got := r.ReadsSystem(); got != tt.readsSystem {
				t.Errorf("ReadsSystem() = %v, want %v", got, tt.readsSystem)
			}
			if r.Name() != "f" || r.Expr() != tt.expr {
				t.Errorf("Name, Expr = %q, %q", r.Name(), r.Expr())
			}
		})
	}
}

func TestFieldNamedSystem(t *testing.T) {
	k := testKind()
	k.Fields["system"] = &nhisync.Field{Name: "system", Type: nhisync.TypeInt}
	k.FieldNames = append(k.FieldNames, "system")
	r, err := Compile(k, "s", `system > 3`)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Fields(); !slices.Equal(got, []string{"system"}) {
		t.Errorf("Fields() = %q", got)
	}
	if r.ReadsSystem() {
		t.Error("ReadsSystem() = true for a field named system")
	}
	ok, err := r.Check(map[string]nhisync.Value{"system": nhisync.Str("5")}, "cmdb")
	if err != nil || !ok {
		t.Errorf("Check = %v, %v; want true (the field hides the variable)", ok, err)
	}
}

func TestCheckConcurrent(t *testing.T) {
	r, err := Compile(testKind(), "c", `"pci" in classification && age == 42`)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			fields := record()
			if i%2 == 1 {
				fields["age"] = nhisync.Str("7")
			}
			for range 200 {
				ok, err := r.Check(fields, "")
				if err != nil {
					done <- err
					return
				}
				if ok != (i%2 == 0) {
					done <- nhisync.Errorf(nhisync.EINTERNAL, "goroutine %d got %v", i, ok)
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	k := testKind()
	r, err := Compile(k, "owner-is-email", `owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')`)
	if err != nil {
		b.Fatal(err)
	}
	fields := record()
	delete(fields, "reads")
	delete(fields, "application") // 8 fields
	b.ReportAllocs()
	for b.Loop() {
		ok, err := r.Check(fields, "")
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
