package rule

import (
	"cmp"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/nhisync/nhisync"
)

// Filter is a compiled `nhisync records --where` expression over golden
// records of one kind. It is safe for concurrent use.
type Filter struct {
	kind  *nhisync.Kind
	expr  string
	binds []variable
	prg   cel.Program
	acts  *activations
}

const filterWhat = "filter"

// CompileFilter compiles a filter over records of kind. The expression
// sees the same variables as rules (system is always "") plus `kind` and
// `key` (the record's kind and KEY); fields of the same names take
// precedence. It must type-check to bool.
//
// CompileFilter returns *nhisync.Error with code EINVALID for an invalid
// expression.
func CompileFilter(kind *nhisync.Kind, expr string) (*Filter, error) {
	vars := kindVars(kind, SystemVar, KindVar, KeyVar)
	env, err := newEnv(vars)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: filterWhat + ": " + err.Error()}
	}
	ast, parsed, err := compile(env, vars, filterWhat, expr)
	if err != nil {
		return nil, err
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, nhisync.Errorf(nhisync.EINVALID, "filter: the expression must be true or false, but it gives a %s", ast.OutputType())
	}
	prg, err := program(env, ast, filterWhat)
	if err != nil {
		return nil, err
	}
	f := &Filter{kind: kind, expr: expr, prg: prg}
	f.binds, _ = bound(vars, compiledReferences(ast, parsed))
	names := make([]string, len(f.binds))
	for i, b := range f.binds {
		names[i] = b.name
	}
	f.acts = newActivations(names)
	return f, nil
}

// CompileFilters compiles expr for every kind of cfg (only kind, when it
// is not empty) whose fields it reads, as `records --where` and `report
// --where` apply it: the records of a kind it does not compile for are
// left out, so '"pii" in classification' lists service accounts without
// failing on the application kind, which has no classification. The map
// holds the kinds it applies to.
//
// CompileFilters returns *nhisync.Error with code EINVALID, naming the
// first kind's problem, when expr compiles for none of them.
func CompileFilters(cfg *nhisync.Config, kind, expr string) (map[string]*Filter, error) {
	out := map[string]*Filter{}
	var first error
	for _, k := range cfg.KindNames {
		if kind != "" && k != kind {
			continue
		}
		f, err := CompileFilter(cfg.Kinds[k], expr)
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		out[k] = f
	}
	if len(out) == 0 {
		if first == nil {
			return nil, nhisync.Errorf(nhisync.EINVALID, "filter: no kind %q in the config", kind)
		}
		return nil, first
	}
	return out, nil
}

// Expr returns the filter's CEL source.
func (f *Filter) Expr() string { return f.expr }

// Match reports whether rec passes the filter. It returns *nhisync.Error
// with code EINVALID when a golden value does not convert to its field's
// type or evaluation fails.
func (f *Filter) Match(rec *nhisync.Record) (bool, error) {
	act := f.acts.get()
	defer f.acts.put(act)
	for i, b := range f.binds {
		if b.field == "" {
			switch b.name {
			case KindVar:
				act.vals[i] = types.String(rec.Kind)
			case KeyVar:
				act.vals[i] = types.String(rec.Key)
			default:
				act.vals[i] = types.String("")
			}
			continue
		}
		v, err := toCEL(b.name, b.field, rec.Value(b.name))
		if err != nil {
			return false, wrapOp(filterWhat+" on "+rec.Name(), err)
		}
		act.vals[i] = v
	}
	return evalBool(f.prg, act, filterWhat)
}
