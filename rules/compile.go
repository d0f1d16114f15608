package rules

import (
	"slices"

	"github.com/expr-lang/expr/ast"
)

// pred is an expression compiled to Go: field reads and comparisons on
// Env, with no interpreter between them. It costs a few nanoseconds where
// the expr VM costs a few hundred.
type pred func(env *Env) bool

// compilePred compiles the common shapes of a rule (boolean fields,
// numbers and strings compared with constants or with each other, a tag
// in item.tags, and !, && and || over those) and returns nil for any
// other expression, which then runs in the expr VM. The tree is the
// checked one, so types are known to agree.
func compilePred(n ast.Node) pred {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*Env) bool { return v }
	case *ast.MemberNode:
		if field(n) == "item.available" {
			return func(env *Env) bool { return env.Item.Available }
		}
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			if p := compilePred(n.Node); p != nil {
				return func(env *Env) bool { return !p(env) }
			}
		}
	case *ast.BinaryNode:
		return compileBinary(n)
	}
	return nil
}

func compileBinary(n *ast.BinaryNode) pred {
	switch n.Operator {
	case "&&", "and", "||", "or":
		l, r := compilePred(n.Left), compilePred(n.Right)
		if l == nil || r == nil {
			return nil
		}
		if n.Operator == "&&" || n.Operator == "and" {
			return func(env *Env) bool { return l(env) && r(env) }
		}
		return func(env *Env) bool { return l(env) || r(env) }
	case "in":
		s := compileString(n.Left)
		if s == nil || field(n.Right) != "item.tags" {
			return nil
		}
		return func(env *Env) bool { return slices.Contains(env.Item.Tags, s(env)) }
	case "==", "!=":
		if l, r := compileString(n.Left), compileString(n.Right); l != nil && r != nil {
			if n.Operator == "==" {
				return func(env *Env) bool { return l(env) == r(env) }
			}
			return func(env *Env) bool { return l(env) != r(env) }
		}
	}
	l, r := compileNumber(n.Left), compileNumber(n.Right)
	if l == nil || r == nil {
		return nil
	}
	switch n.Operator {
	case "==":
		return func(env *Env) bool { return l(env) == r(env) }
	case "!=":
		return func(env *Env) bool { return l(env) != r(env) }
	case "<":
		return func(env *Env) bool { return l(env) < r(env) }
	case "<=":
		return func(env *Env) bool { return l(env) <= r(env) }
	case ">":
		return func(env *Env) bool { return l(env) > r(env) }
	case ">=":
		return func(env *Env) bool { return l(env) >= r(env) }
	}
	return nil
}

// compileNumber compiles a numeric operand. Integers become float64, as
// expr compares an int with a float; the fields' integers are far inside
// float64's exact range.
func compileNumber(n ast.Node) func(*Env) float64 {
	switch n := n.(type) {
	case *ast.IntegerNode:
		v := float64(n.Value)
		return func(*Env) float64 { return v }
	case *ast.FloatNode:
		v := n.Value
		return func(*Env) float64 { return v }
	case *ast.UnaryNode:
		if n.Operator == "-" {
			if v := compileNumber(n.Node); v != nil {
				return func(env *Env) float64 { return -v(env) }
			}
		}
	case *ast.MemberNode:
		switch field(n) {
		case "item.price":
			return func(env *Env) float64 { return env.Item.Price }
		case "item.age_rating":
			return func(env *Env) float64 { return float64(env.Item.AgeRating) }
		case "item.age_days":
			return func(env *Env) float64 { return env.Item.AgeDays }
		case "item.popularity":
			return func(env *Env) float64 { return env.Item.Popularity }
		case "user.age":
			return func(env *Env) float64 { return float64(env.User.Age) }
		}
	}
	return nil
}

func compileString(n ast.Node) func(*Env) string {
	switch n := n.(type) {
	case *ast.StringNode:
		v := n.Value
		return func(*Env) string { return v }
	case *ast.IdentifierNode:
		if n.Value == "query" {
			return func(env *Env) string { return env.Query }
		}
	case *ast.MemberNode:
		switch field(n) {
		case "item.id":
			return func(env *Env) string { return env.Item.ID }
		case "item.title":
			return func(env *Env) string { return env.Item.Title }
		case "item.brand":
			return func(env *Env) string { return env.Item.Brand }
		case "item.category":
			return func(env *Env) string { return env.Item.Category }
		case "user.id":
			return func(env *Env) string { return env.User.ID }
		}
	}
	return nil
}

// field names a member access of a constant field on item or user, as
// "item.price"; "" for anything else.
func field(n ast.Node) string {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return ""
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	prop, named := m.Property.(*ast.StringNode)
	if !ok || !named || id.Value != "item" && id.Value != "user" {
		return ""
	}
	return id.Value + "." + prop.Value
}
