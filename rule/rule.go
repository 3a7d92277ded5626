package rule

import (
	"fmt"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/nhisync/nhisync"
)

// Rule is a compiled validation rule of a kind. It is safe for concurrent
// use.
type Rule struct {
	name   string
	expr   string
	what   string
	fields []string // referenced fields, in the kind's field order
	// binds are the referenced variables, fields first then system.
	binds []variable
	sys   int // index of system in binds, -1 if not referenced
	prg   cel.Program
	acts  *activations
}

var _ nhisync.Rule = (*Rule)(nil)

// Compile compiles a rule of kind. The expression sees one variable per
// field of the kind, typed by the field's type, and `system`, the name of
// the system proposing the change ("" when unknown; a field named system
// takes precedence). It must type-check to bool.
//
// Compile returns *nhisync.Error with code EINVALID and a one-line message
// naming the rule and every problem with its column.
func Compile(kind *nhisync.Kind, name, expr string) (*Rule, error) {
	what := fmt.Sprintf("rule %q", name)
	vars := kindVars(kind, SystemVar)
	env, err := newEnv(vars)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: what + ": " + err.Error()}
	}
	ast, parsed, err := compile(env, vars, what, expr)
	if err != nil {
		return nil, err
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, nhisync.Errorf(nhisync.EINVALID, "%s: the check must be true or false, but it gives a %s; compare it, e.g. x == \"…\"", what, ast.OutputType())
	}
	prg, err := program(env, ast, what)
	if err != nil {
		return nil, err
	}
	r := &Rule{name: name, expr: expr, what: what, prg: prg, sys: -1}
	r.binds, r.fields = bound(vars, compiledReferences(ast, parsed))
	r.sys = indexOf(r.binds, SystemVar)
	if r.sys >= 0 && r.binds[r.sys].field != "" {
		r.sys = -1 // a field named system
	}
	names := make([]string, len(r.binds))
	for i, b := range r.binds {
		names[i] = b.name
	}
	r.acts = newActivations(names)
	return r, nil
}

// bound returns the declared variables among refs, in declaration order,
// and the names of those that are fields.
func bound(vars []variable, refs map[string]bool) (binds []variable, fields []string) {
	for _, v := range vars {
		if !refs[v.name] {
			continue
		}
		binds = append(binds, v)
		if v.field != "" {
			fields = append(fields, v.name)
		}
	}
	return binds, fields
}

// Name returns the rule's name.
func (r *Rule) Name() string { return r.name }

// Expr returns the rule's CEL source.
func (r *Rule) Expr() string { return r.expr }

// Fields returns the canonical fields the rule reads, in the kind's field
// order. The slice must not be modified.
func (r *Rule) Fields() []string { return r.fields }

// ReadsSystem reports whether the rule reads the system proposing the
// change (the variable system; not a field of that name). A rule that
// does not is a function of its fields alone: a decider may take its
// verdict on a proposal for another's that leaves its fields alike.
func (r *Rule) ReadsSystem() bool { return r.sys >= 0 }

// Check evaluates the rule on a record's field values, system being the
// system that proposes the change ("" when there is none). A field absent
// from fields has no value. It returns *nhisync.Error with code EINVALID
// when a referenced value does not convert to its field's type or
// evaluation fails.
func (r *Rule) Check(fields map[string]nhisync.Value, system string) (bool, error) {
	act := r.acts.get()
	defer r.acts.put(act)
	for i, b := range r.binds {
		if i == r.sys {
			act.vals[i] = types.String(system)
			continue
		}
		v, err := toCEL(b.name, b.field, fields[b.name])
		if err != nil {
			return false, wrapOp(r.what, err)
		}
		act.vals[i] = v
	}
	return evalBool(r.prg, act, r.what)
}

// evalBool runs prg and requires a bool.
func evalBool(prg cel.Program, act *activation, what string) (bool, error) {
	out, _, err := prg.Eval(act)
	if err != nil {
		return false, evalError(what, err)
	}
	return asBool(out, what)
}

func asBool(out ref.Val, what string) (bool, error) {
	b, ok := out.(types.Bool)
	if !ok {
		return false, nhisync.Errorf(nhisync.EINVALID, "%s: the result is a %s, not true or false", what, out.Type().TypeName())
	}
	return bool(b), nil
}

// wrapOp prefixes an *nhisync.Error's message with what.
func wrapOp(what string, err error) error {
	if e, ok := err.(*nhisync.Error); ok {
		return &nhisync.Error{Code: e.Code, Message: what + ": " + e.Message, Err: e.Err}
	}
	return err
}
