package rule

import (
	"maps"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
)

// compiledReferences returns references of checked, the checked AST of
// an expression, and the variables parsed, its parsed AST, names with a
// leading dot (.owner). The checker writes those without it, so inside a
// comprehension whose variable has the same name (tags.exists(owner,
// owner == .owner)) the variable would look bound: a rule would not run
// for the field's proposals, and would find the field unbound when it
// ran. The parsed expression keeps the dot.
func compiledReferences(checked, parsed *cel.Ast) map[string]bool {
	refs := references(checked.NativeRep().Expr())
	maps.Copy(refs, references(parsed.NativeRep().Expr()))
	return refs
}

// references returns the free variables of an expression: the
// identifiers it reads that are not bound by a comprehension (exists, all,
// map, filter, …) around them. Each name is reported once.
func references(e ast.Expr) map[string]bool {
	w := walker{free: map[string]bool{}, bound: map[string]int{}}
	w.walk(e)
	return w.free
}

type walker struct {
	free  map[string]bool
	bound map[string]int // comprehension variables in scope, counted for nesting
}

func (w *walker) bind(names ...string) {
	for _, n := range names {
		if n != "" {
			w.bound[n]++
		}
	}
}

func (w *walker) unbind(names ...string) {
	for _, n := range names {
		if n != "" {
			w.bound[n]--
		}
	}
}

func (w *walker) walk(e ast.Expr) {
	if e == nil {
		return
	}
	switch e.Kind() {
	case ast.IdentKind:
		name := e.AsIdent()
		if root, ok := strings.CutPrefix(name, "."); ok {
			w.free[root] = true // never a comprehension's variable
		} else if w.bound[name] == 0 {
			w.free[name] = true
		}
	case ast.SelectKind:
		w.walk(e.AsSelect().Operand())
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			w.walk(c.Target())
		}
		for _, a := range c.Args() {
			w.walk(a)
		}
	case ast.ListKind:
		for _, el := range e.AsList().Elements() {
			w.walk(el)
		}
	case ast.MapKind:
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			w.walk(me.Key())
			w.walk(me.Value())
		}
	case ast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			w.walk(f.AsStructField().Value())
		}
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		// The range and the accumulator's start are outside the loop's scope.
		w.walk(c.IterRange())
		w.walk(c.AccuInit())
		w.bind(c.IterVar(), c.IterVar2(), c.AccuVar())
		w.walk(c.LoopCondition())
		w.walk(c.LoopStep())
		w.unbind(c.IterVar(), c.IterVar2())
		w.walk(c.Result())
		w.unbind(c.AccuVar())
	}
}
