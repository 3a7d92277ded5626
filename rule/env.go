// Package rule owns the CEL side of nhisync: validation rules of a kind
// (kinds.*.rules), read/write transforms of a system's field mappings, and
// the --where filters of `nhisync records`. Expressions are compiled and
// type-checked once (cel.dev/cel-go) and evaluated many times; evaluation
// binds only the variables an expression references and reuses its
// activations, so a check costs little more than the CEL program itself.
//
// Values cross into CEL typed by their field's type: string, enum and ref
// as string; int as int; bool as bool; time as google.protobuf.Timestamp;
// set and refs as list(string). A field without a value is the zero of its
// type ("", 0, false, the 1970 epoch, []). The strings, lists and sets
// extensions of cel-go are enabled, and so is the built-in matches().
package rule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/nhisync/nhisync"
)

// SystemVar is the variable holding the system that proposes a change in
// rules and filters ("" when there is none). A field named "system" hides it.
const SystemVar = "system"

// Variables filters add to those of rules. Fields of the same names hide them.
const (
	KindVar = "kind"
	KeyVar  = "key"
)

// ValueVar is the variable holding the input of a transform.
const ValueVar = "value"

// epoch is the value of a time field that has none.
var epoch = types.Timestamp{Time: time.Unix(0, 0).UTC()}

// celType returns the CEL type of a field type.
func celType(t nhisync.FieldType) *cel.Type {
	switch t {
	case nhisync.TypeInt:
		return cel.IntType
	case nhisync.TypeBool:
		return cel.BoolType
	case nhisync.TypeTime:
		return cel.TimestampType
	case nhisync.TypeSet, nhisync.TypeRefs:
		return cel.ListType(cel.StringType)
	default:
		return cel.StringType
	}
}

// extensions are the cel-go libraries every environment has.
func extensions() []cel.EnvOption {
	return []cel.EnvOption{ext.Strings(), ext.Lists(), ext.Sets()}
}

// newEnv returns an environment declaring vars (name → type).
func newEnv(vars []variable) (*cel.Env, error) {
	opts := extensions()
	for _, v := range vars {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	return cel.NewEnv(opts...)
}

// variable is one declared variable of an environment.
type variable struct {
	name string
	typ  *cel.Type
	// field is the field type for kind fields ("" for the special ones).
	field nhisync.FieldType
}

// kindVars returns the variables of a kind's fields, plus the specials not
// hidden by a field of the same name.
func kindVars(kind *nhisync.Kind, specials ...string) []variable {
	vars := make([]variable, 0, len(kind.FieldNames)+len(specials))
	for _, name := range kind.FieldNames {
		f := kind.Fields[name]
		if f == nil {
			continue
		}
		vars = append(vars, variable{name: name, typ: celType(f.Type), field: f.Type})
	}
	for _, s := range specials {
		if kind.Fields[s] == nil {
			vars = append(vars, variable{name: s, typ: cel.StringType})
		}
	}
	return vars
}

// compile parses and checks expr in env (what env.Compile does) and
// returns the checked AST and the parsed one (compiledReferences reads
// both), or a readable *nhisync.Error (EINVALID). what names the
// expression in the message ("rule \"owner-is-email\"", "transform").
func compile(env *cel.Env, vars []variable, what, expr string) (checked, parsed *cel.Ast, err error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil, nhisync.Errorf(nhisync.EINVALID, "%s: the expression is empty", what)
	}
	parsed, iss := env.Parse(expr)
	if iss == nil || iss.Err() == nil {
		checked, iss = env.Check(parsed)
	}
	if iss != nil && iss.Err() != nil {
		return nil, nil, &nhisync.Error{Code: nhisync.EINVALID, Message: what + ": " + issuesText(iss.Errors(), vars)}
	}
	return checked, parsed, nil
}

// issuesText renders CEL errors on one line, with the column of each and,
// for an unknown name cel-go has no suggestion for, the variables there are.
func issuesText(errs []*common.Error, vars []variable) string {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		msg := strings.ReplaceAll(e.Message, " (in container '')", "")
		// cel-go suggests a near name itself; otherwise list them all.
		if undeclaredRef(msg) && !strings.Contains(msg, "did you mean") && len(vars) > 0 {
			names := make([]string, len(vars))
			for i, v := range vars {
				names[i] = v.name
			}
			msg += "; the variables are " + strings.Join(names, ", ")
		}
		if col := e.Location.Column(); col >= 0 {
			msg = fmt.Sprintf("column %d: %s", col+1, msg)
		}
		parts = append(parts, msg)
	}
	return "invalid CEL: " + strings.Join(parts, "; ")
}

// undeclaredRef reports whether a CEL error is about an unknown name.
func undeclaredRef(msg string) bool {
	return strings.Contains(msg, "undeclared reference to '")
}

// toCEL converts a field value to its CEL value, or returns an error that
// names the field but never the value (it may be sensitive).
func toCEL(name string, t nhisync.FieldType, v nhisync.Value) (ref.Val, error) {
	if t.IsSet() {
		if v.IsZero() {
			return types.NewStringList(types.DefaultTypeAdapter, nil), nil
		}
		if !v.IsSet() {
			return types.NewStringList(types.DefaultTypeAdapter, []string{v.Text()}), nil
		}
		return types.NewStringList(types.DefaultTypeAdapter, v.Elems()), nil
	}
	if v.IsSet() && !v.IsZero() {
		return nil, nhisync.Errorf(nhisync.EINVALID, "field %s: expected a single %s, got a set", name, t)
	}
	s := v.Text()
	switch t {
	case nhisync.TypeInt:
		if s == "" {
			return types.IntZero, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, nhisync.Errorf(nhisync.EINVALID, "field %s: the value is not an integer", name)
		}
		return types.Int(n), nil
	case nhisync.TypeBool:
		switch s {
		case "", "false":
			return types.False, nil
		case "true":
			return types.True, nil
		}
		switch nhisync.TypeBool.Canonical(v).Text() {
		case "true":
			return types.True, nil
		case "false":
			return types.False, nil
		}
		return nil, nhisync.Errorf(nhisync.EINVALID, "field %s: the value is not true or false", name)
	case nhisync.TypeTime:
		if s == "" {
			return epoch, nil
		}
		tm, ok := nhisync.ParseTime(s)
		if !ok {
			return nil, nhisync.Errorf(nhisync.EINVALID, "field %s: the value is not an RFC 3339 time", name)
		}
		return types.Timestamp{Time: tm}, nil
	default:
		return types.String(s), nil
	}
}

// activation binds the variables one program references. Lookups scan a
// short slice: an expression references a handful of names, so this beats
// a map and allocates nothing.
type activation struct {
	names []string
	vals  []ref.Val
}

var _ interpreter.Activation = (*activation)(nil)

// ResolveName returns the value bound to name.
func (a *activation) ResolveName(name string) (any, bool) {
	for i, n := range a.names {
		if n == name {
			return a.vals[i], true
		}
	}
	return nil, false
}

// Parent returns nil: activations are flat.
func (a *activation) Parent() interpreter.Activation { return nil }

// activations pools the activations of one program.
type activations struct {
	names []string
	pool  sync.Pool
}

func newActivations(names []string) *activations {
	a := &activations{names: names}
	a.pool.New = func() any {
		return &activation{names: a.names, vals: make([]ref.Val, len(a.names))}
	}
	return a
}

func (a *activations) get() *activation { return a.pool.Get().(*activation) }

func (a *activations) put(act *activation) {
	clear(act.vals)
	a.pool.Put(act)
}

// program returns the evaluable program of a checked AST.
func program(env *cel.Env, ast *cel.Ast, what string) (cel.Program, error) {
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: what + ": " + err.Error()}
	}
	return prg, nil
}

// evalError wraps a CEL evaluation error.
func evalError(what string, err error) error {
	return &nhisync.Error{Code: nhisync.EINVALID, Message: what + ": evaluation failed", Err: err}
}

// indexOf returns the index of the variable named name, or -1.
func indexOf(vars []variable, name string) int {
	return slices.IndexFunc(vars, func(v variable) bool { return v.name == name })
}
