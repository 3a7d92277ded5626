package rule

import (
	"strconv"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/nhisync/nhisync"
)

// Transform is a compiled read or write expression of a field mapping
// (`{ name: N, read: CEL, write: CEL }`). It is safe for concurrent use.
type Transform struct {
	expr string
	prg  cel.Program
	acts *activations
}

var _ nhisync.Transform = (*Transform)(nil)

const transformWhat = "transform"

// CompileTransform compiles a transform of a field of type fieldType. The
// expression sees one variable, `value`: a string for scalar fields (a
// native number or boolean arrives as its text, no value as ""); for set
// and refs fields it is dynamic, a list(string) when the input is a set
// and a string when it is a scalar (a raw text cell to split, say), so
// both `value.split(";")` and `value.map(v, v.upperAscii())` work.
//
// The result may be a string, a number, a bool, a timestamp, a list (of
// strings or other scalars) or null; see Apply. CompileTransform returns
// *nhisync.Error with code EINVALID for an invalid expression or one whose
// result cannot be a value. The Transform it returns is a *Transform, and
// nil on error (never a typed nil).
func CompileTransform(expr string, fieldType nhisync.FieldType) (nhisync.Transform, error) {
	typ := cel.StringType
	if fieldType.IsSet() {
		typ = cel.DynType
	}
	vars := []variable{{name: ValueVar, typ: typ}}
	env, err := newEnv(vars)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Message: transformWhat + ": " + err.Error()}
	}
	ast, _, err := compile(env, vars, transformWhat, expr)
	if err != nil {
		return nil, err
	}
	if !valueType(ast.OutputType()) {
		return nil, nhisync.Errorf(nhisync.EINVALID, "transform: the expression gives a %s; return a string, number, bool, timestamp, list of strings or null", ast.OutputType())
	}
	prg, err := program(env, ast, transformWhat)
	if err != nil {
		return nil, err
	}
	return &Transform{expr: expr, prg: prg, acts: newActivations([]string{ValueVar})}, nil
}

// valueType reports whether a CEL type can be turned into a Value.
func valueType(t *cel.Type) bool {
	switch t.Kind() {
	case types.StringKind, types.IntKind, types.UintKind, types.DoubleKind, types.BoolKind,
		types.TimestampKind, types.NullTypeKind, types.DynKind, types.AnyKind:
		return true
	case types.ListKind:
		p := t.Parameters()
		return len(p) == 1 && p[0].Kind() != types.ListKind && valueType(p[0])
	}
	return false
}

// Expr returns the transform's CEL source.
func (t *Transform) Expr() string { return t.expr }

// Apply evaluates the transform on v. The result becomes a Value: a string
// as is; an int, uint, double or bool as its text; a timestamp as
// nhisync.FormatTime; a list as a set of its elements' text; null as no
// value. Apply returns *nhisync.Error with code EINVALID when evaluation
// fails or the result is of another type.
func (t *Transform) Apply(v nhisync.Value) (nhisync.Value, error) {
	act := t.acts.get()
	defer t.acts.put(act)
	if v.IsSet() {
		act.vals[0] = types.NewStringList(types.DefaultTypeAdapter, v.Elems())
	} else {
		act.vals[0] = types.String(v.Text())
	}
	out, _, err := t.prg.Eval(act)
	if err != nil {
		return nhisync.Value{}, evalError(transformWhat, err)
	}
	return fromCEL(out)
}

// fromCEL maps a transform's result to a Value.
func fromCEL(out ref.Val) (nhisync.Value, error) {
	if l, ok := out.(traits.Lister); ok {
		n, ok := l.Size().(types.Int)
		if !ok {
			return nhisync.Value{}, nhisync.Errorf(nhisync.EINVALID, "transform: the list has no size")
		}
		elems := make([]string, 0, int(n))
		for it := l.Iterator(); it.HasNext() == types.True; {
			s, ok := scalarText(it.Next())
			if !ok {
				return nhisync.Value{}, nhisync.Errorf(nhisync.EINVALID, "transform: a list element is not a string, number, bool or timestamp")
			}
			elems = append(elems, s)
		}
		return nhisync.SetOf(elems...), nil
	}
	if out == types.NullValue {
		return nhisync.Value{}, nil
	}
	s, ok := scalarText(out)
	if !ok {
		return nhisync.Value{}, nhisync.Errorf(nhisync.EINVALID, "transform: the result is a %s; return a string, number, bool, timestamp, list of strings or null", out.Type().TypeName())
	}
	return nhisync.Str(s), nil
}

// scalarText returns the canonical text of a scalar CEL value.
func scalarText(v ref.Val) (string, bool) {
	switch x := v.(type) {
	case types.String:
		return string(x), true
	case types.Int:
		return strconv.FormatInt(int64(x), 10), true
	case types.Uint:
		return strconv.FormatUint(uint64(x), 10), true
	case types.Double:
		return strconv.FormatFloat(float64(x), 'g', -1, 64), true
	case types.Bool:
		return strconv.FormatBool(bool(x)), true
	case types.Timestamp:
		return nhisync.FormatTime(x.Time), true
	}
	return "", false
}
