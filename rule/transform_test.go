package rule

import (
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

func TestTransform(t *testing.T) {
	tests := []struct {
		name string
		expr string
		typ  nhisync.FieldType
		in   nhisync.Value
		want nhisync.Value
	}{
		{"lower", `value.lowerAscii()`, nhisync.TypeString, nhisync.Str("Alice@Example.COM"), nhisync.Str("alice@example.com")},
		{"conditional suffix", `value == "" ? "" : value + "@example.com"`, nhisync.TypeString, nhisync.Str("alice"), nhisync.Str("alice@example.com")},
		{"conditional suffix, no value", `value == "" ? "" : value + "@example.com"`, nhisync.TypeString, nhisync.Value{}, nhisync.Value{}},
		{"split a text cell into a set", `value.split(";")`, nhisync.TypeSet, nhisync.Str("pii;pci"), nhisync.SetOf("pci", "pii")},
		{"map a set", `value.map(v, v.upperAscii())`, nhisync.TypeSet, nhisync.SetOf("pii", "pci"), nhisync.SetOf("PCI", "PII")},
		{"join a set", `value.join(";")`, nhisync.TypeSet, nhisync.SetOf("b", "a"), nhisync.Str("a;b")},
		{"int result", `int(value) * 2`, nhisync.TypeInt, nhisync.Str("21"), nhisync.Str("42")},
		{"uint result", `uint(value)`, nhisync.TypeInt, nhisync.Str("7"), nhisync.Str("7")},
		{"double result", `double(value) / 4.0`, nhisync.TypeString, nhisync.Str("1"), nhisync.Str("0.25")},
		{"bool result", `value == "Y"`, nhisync.TypeBool, nhisync.Str("Y"), nhisync.Str("true")},
		{"timestamp result", `timestamp(int(value))`, nhisync.TypeTime, nhisync.Str("86400"), nhisync.Str(nhisync.FormatTime(time.Unix(86400, 0)))},
		{"null result", `value == "-" ? null : dyn(value)`, nhisync.TypeString, nhisync.Str("-"), nhisync.Value{}},
		{"list of ints", `[1, 2]`, nhisync.TypeSet, nhisync.Value{}, nhisync.SetOf("1", "2")},
		{"regex replace via matches", `value.matches("^[0-9]+$") ? "n" : "s"`, nhisync.TypeString, nhisync.Str("123"), nhisync.Str("n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := CompileTransform(tt.expr, tt.typ)
			if err != nil {
				t.Fatalf("CompileTransform: %v", err)
			}
			got, err := tr.Apply(tt.in)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !got.Equal(tt.want) || got.IsSet() != tt.want.IsSet() && !got.IsZero() {
				t.Errorf("Apply(%v) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestTransformErrors(t *testing.T) {
	tests := []struct {
		name        string
		expr        string
		typ         nhisync.FieldType
		in          nhisync.Value
		compileErr  string
		applyErrSub string
	}{
		{"syntax", `value.`, nhisync.TypeString, nhisync.Value{}, "invalid CEL", ""},
		{"misspelt variable", `valeu.lowerAscii()`, nhisync.TypeString, nhisync.Value{}, `did you mean 'value'?`, ""},
		{"unknown function", `value.shout()`, nhisync.TypeString, nhisync.Value{}, "undeclared reference to 'shout'", ""},
		{"map result", `{"a": value}`, nhisync.TypeString, nhisync.Value{}, "map(string, string)", ""},
		{"bytes result", `bytes(value)`, nhisync.TypeString, nhisync.Value{}, "bytes", ""},
		{"nested list", `[[value]]`, nhisync.TypeString, nhisync.Value{}, "list(list(string))", ""},
		{"runtime type error", `value.split(";")`, nhisync.TypeSet, nhisync.SetOf("a"), "", "evaluation failed"},
		{"runtime map result", `value.size() > 0 ? {"a": 1} : value`, nhisync.TypeSet, nhisync.SetOf("a"), "", "the result is a map"},
		{"runtime bad int", `int(value)`, nhisync.TypeInt, nhisync.Str("x"), "", "evaluation failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := CompileTransform(tt.expr, tt.typ)
			if tt.compileErr != "" {
				if err == nil {
					t.Fatal("CompileTransform succeeded, want an error")
				}
				if tr != nil {
					t.Errorf("CompileTransform returned a non-nil Transform with an error")
				}
				if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), tt.compileErr) {
					t.Errorf("error %q (%s), want EINVALID containing %q", nhisync.ErrorMessage(err), nhisync.ErrorCode(err), tt.compileErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CompileTransform: %v", err)
			}
			_, err = tr.Apply(tt.in)
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), tt.applyErrSub) {
				t.Errorf("error %q (%s), want EINVALID containing %q", nhisync.ErrorMessage(err), nhisync.ErrorCode(err), tt.applyErrSub)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	rec := &nhisync.Record{Kind: "service_account", Key: "aws/payments-bot", Fields: map[string]*nhisync.Golden{}}
	for name, v := range record() {
		rec.Fields[name] = &nhisync.Golden{Value: v}
	}
	tests := []struct {
		expr string
		want bool
	}{
		{`kind == "service_account"`, true},
		{`key == "aws/payments-bot"`, true},
		{`key.startsWith("gcp/")`, false},
		{`"pci" in classification && lifecycle == "active"`, true},
		{`age >= 42 && privileged`, true},
		{`last_rotated < timestamp("2026-01-01T00:00:00Z")`, false},
		{`system == ""`, true},
		{`owner.endsWith("@example.com")`, true},
	}
	k := testKind()
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := CompileFilter(k, tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Match(rec)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	k := testKind()
	for _, tt := range []struct{ expr, substr string }{
		{`kind`, "must be true or false"},
		{`knd == "x"`, `did you mean 'kind'?`},
		{`owner ==`, "invalid CEL"},
	} {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := CompileFilter(k, tt.expr)
			if err == nil || nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), tt.substr) {
				t.Errorf("CompileFilter(%q) = %v, want EINVALID containing %q", tt.expr, err, tt.substr)
			}
		})
	}
	f, err := CompileFilter(k, `age > 1`)
	if err != nil {
		t.Fatal(err)
	}
	rec := &nhisync.Record{Kind: "service_account", Key: "aws/x", Fields: map[string]*nhisync.Golden{"age": {Value: nhisync.Str("old")}}}
	if _, err := f.Match(rec); err == nil || !strings.Contains(nhisync.ErrorMessage(err), "service_account/aws/x") {
		t.Errorf("Match on a bad int = %v, want an error naming the record", err)
	}
}
