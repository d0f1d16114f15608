package rules

import (
	"sync/atomic"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/recsys-dev/recsys/catalog"
)

// MaxCachedAge is the highest user age whose filter verdicts a Bound
// remembers; an older (or invalid) age is evaluated every time.
const MaxCachedAge = 150

// class is what a filter expression's verdict depends on.
type class uint8

const (
	// classItem: only the item's stored fields, so one verdict per item
	// holds for every request of the catalog's life.
	classItem class = iota
	// classAge: the item and user.age, one verdict per item and age.
	classAge
	// classRequest: anything else (user.id, query, item.age_days, which
	// moves with the clock, now(), or a name the analysis does not know):
	// evaluated per request.
	classRequest
)

// classify reads a compiled expression's tree. It errs towards
// classRequest: a rule it cannot prove cacheable is run every time.
func classify(p *vm.Program) class {
	c := &classifier{fields: map[ast.Node]bool{}}
	n := p.Node()
	ast.Walk(&n, c)
	// Walk visits children before their parent, so identifiers are judged
	// after every member access has claimed its own.
	out := classItem
	for _, id := range c.idents {
		switch {
		case c.fields[id] && id.Value == "item":
		case c.fields[id] && id.Value == "user":
			out = max(out, classAge)
		default:
			return classRequest
		}
	}
	return max(out, c.at)
}

type classifier struct {
	idents []*ast.IdentifierNode
	// fields are the identifiers used as item.<field> or user.age, with a
	// constant field name.
	fields map[ast.Node]bool
	at     class
}

func (c *classifier) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		c.idents = append(c.idents, n)
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, named := n.Property.(*ast.StringNode)
		if !ok || !named {
			return
		}
		switch {
		case id.Value == "item" && prop.Value != "age_days":
			c.fields[id] = true
		case id.Value == "user" && prop.Value == "age":
			c.fields[id] = true
		}
	case *ast.BuiltinNode:
		if n.Name == "now" || n.Name == "date" {
			c.at = classRequest
		}
	}
}

// Bound is a Set's filter rules bound to one immutable catalog. It
// remembers the verdict of every rule that reads only the item (and of
// those that also read user.age, per age), so a rule is evaluated once per
// item over the catalog's life rather than once per item per request:
// retrieval asks the filter about thousands of items a request, and an
// expression costs a microsecond where a remembered verdict costs a
// nanosecond. Rules that read the request are evaluated every call. A
// run-time error is a false verdict (see RuntimeErrors), remembered like
// any other.
//
// A Bound is safe for concurrent use; the verdicts are set with atomic
// operations, and two requests racing to evaluate one item agree.
type Bound struct {
	set   *Set
	items []catalog.Item
	// Filter indexes, by class.
	byItem, byAge, byRequest []int
	item                     *verdicts // nil when no rule is item-only
	ages                     [MaxCachedAge + 1]atomic.Pointer[verdicts]
}

// Bind binds s's filter rules to items, which must not change while the
// Bound is in use. A nil Set binds to nil, whose Keep keeps everything.
func (s *Set) Bind(items []catalog.Item) *Bound {
	if s == nil {
		return nil
	}
	b := &Bound{set: s, items: items}
	for i := range s.filters {
		switch s.filters[i].class {
		case classItem:
			b.byItem = append(b.byItem, i)
		case classAge:
			b.byAge = append(b.byAge, i)
		default:
			b.byRequest = append(b.byRequest, i)
		}
	}
	if len(b.byItem) > 0 {
		b.item = newVerdicts(len(items))
	}
	return b
}

// Set is the rule set b binds (nil for a nil Bound).
func (b *Bound) Set() *Set {
	if b == nil {
		return nil
	}
	return b.set
}

// PerRequest reports whether some rule is evaluated on every call, which
// is when a caller asking about one item twice should remember the answer
// itself.
func (b *Bound) PerRequest() bool { return b != nil && len(b.byRequest) > 0 }

// Classes counts the filter rules by what their verdicts are kept for:
// per item, per item and user age, and evaluated per request.
func (b *Bound) Classes() (item, age, request int) {
	if b == nil {
		return 0, 0, 0
	}
	return len(b.byItem), len(b.byAge), len(b.byRequest)
}

// Keep reports whether item id passes every filter rule for the request
// env describes; env's item is overwritten. The caller owns env (one per
// goroutine).
func (b *Bound) Keep(id int32, env *Env) bool {
	if b == nil || len(b.set.filters) == 0 {
		return true
	}
	r := run{b: b, id: id, env: env}
	defer r.done()
	if b.item != nil && !b.item.keep(&r, b.byItem) {
		return false
	}
	if len(b.byAge) > 0 {
		age := env.User.Age
		if age < 0 || age > MaxCachedAge {
			if !r.eval(b.byAge) {
				return false
			}
		} else {
			v := b.ages[age].Load()
			if v == nil {
				v = newVerdicts(len(b.items))
				if !b.ages[age].CompareAndSwap(nil, v) {
					v = b.ages[age].Load()
				}
			}
			if !v.keep(&r, b.byAge) {
				return false
			}
		}
	}
	return len(b.byRequest) == 0 || r.eval(b.byRequest)
}

// Verdicts remembers the filter verdicts of one item that changed after
// its catalog was bound, under one Bound's rule set: the verdict of the
// item-only rules, taken when the change is applied, and, as requests ask,
// those of the rules that also read user.age, per age. It is what a Bound
// keeps for its own items, for an item it does not hold; safe for
// concurrent use like a Bound.
type Verdicts struct {
	set      *Set
	pass     bool
	ageKnown [ageWords]atomic.Uint64
	agePass  [ageWords]atomic.Uint64
}

// ageWords hold one bit per cached age.
const ageWords = (MaxCachedAge + 64) / 64

// Verdicts evaluates it's item-only rules for a new Verdicts. env is
// overwritten.
func (b *Bound) Verdicts(it *catalog.Item, env *Env) *Verdicts {
	if b == nil {
		return nil
	}
	v := &Verdicts{set: b.set, pass: true}
	if len(b.byItem) > 0 {
		r := run{b: b, env: env, item: it}
		v.pass = r.eval(b.byItem)
		r.done()
	}
	return v
}

// KeepChanged is Keep for an item changed since the bind, as it is now,
// with the verdicts remembered for it (nil, or taken under another set:
// every rule is evaluated). env's item is overwritten.
func (b *Bound) KeepChanged(it *catalog.Item, v *Verdicts, env *Env) bool {
	if b == nil || len(b.set.filters) == 0 {
		return true
	}
	if v == nil || v.set != b.set {
		r := run{b: b, env: env, item: it}
		defer r.done()
		return r.eval(b.byItem) && r.eval(b.byAge) && r.eval(b.byRequest)
	}
	if !v.pass {
		return false
	}
	// The remembered age verdict first: retrieval asks about thousands of
	// items a request, most of them answered without an evaluation.
	ageDone := len(b.byAge) == 0
	age := env.User.Age
	if !ageDone && age >= 0 && age <= MaxCachedAge {
		w, bit := age/64, uint64(1)<<(age%64)
		if v.ageKnown[w].Load()&bit != 0 {
			if v.agePass[w].Load()&bit == 0 {
				return false
			}
			ageDone = true
		}
	}
	if ageDone && len(b.byRequest) == 0 {
		return true
	}
	r := run{b: b, env: env, item: it}
	defer r.done()
	if !ageDone {
		ok := r.eval(b.byAge)
		if age >= 0 && age <= MaxCachedAge {
			w, bit := age/64, uint64(1)<<(age%64)
			if ok {
				v.agePass[w].Or(bit)
			}
			v.ageKnown[w].Or(bit)
		}
		if !ok {
			return false
		}
	}
	return len(b.byRequest) == 0 || r.eval(b.byRequest)
}

// run is one Keep call's evaluation state: the env pointed at the item
// and a VM, taken only when a verdict is not remembered (the VM only for a
// rule not compiled to Go).
type run struct {
	b     *Bound
	id    int32
	env   *Env
	m     *vm.VM
	bound bool
	item  *catalog.Item // evaluated instead of items[id] when set
}

func (r *run) eval(rules []int) bool {
	if !r.bound {
		if r.item != nil {
			r.env.SetItem(r.item)
		} else {
			r.env.SetItem(&r.b.items[r.id])
		}
		r.bound = true
	}
	for _, i := range rules {
		p := &r.b.set.filters[i]
		if p.fn == nil && r.m == nil {
			r.m = r.b.set.vms.Get().(*vm.VM)
		}
		if !r.b.set.eval(r.m, p, r.env) {
			return false
		}
	}
	return true
}

func (r *run) done() {
	if r.m != nil {
		r.b.set.vms.Put(r.m)
	}
}

// verdicts are remembered filter outcomes, two bits an item: known and
// pass.
type verdicts struct{ known, pass []atomic.Uint64 }

func newVerdicts(n int) *verdicts {
	w := (n + 63) / 64
	return &verdicts{known: make([]atomic.Uint64, w), pass: make([]atomic.Uint64, w)}
}

// keep returns the remembered verdict of rules for r's item, or evaluates
// and remembers it. The pass bit is set before the known bit, so a reader
// that sees an item known sees its verdict.
func (v *verdicts) keep(r *run, rules []int) bool {
	w, bit := r.id>>6, uint64(1)<<(r.id&63)
	if v.known[w].Load()&bit != 0 {
		return v.pass[w].Load()&bit != 0
	}
	ok := r.eval(rules)
	if ok {
		v.pass[w].Or(bit)
	}
	v.known[w].Or(bit)
	return ok
}
