package rules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/recsys-dev/recsys/catalog"
)

// Candidate is one ranked item as business rules see it.
type Candidate struct {
	Item  *catalog.Item
	Score float32
	// Fired lists the business rules that changed this candidate (boosted
	// it or held it back under a cap), for explain traces.
	Fired []string
	// Ref is the caller's own index (into its feature rows, say), carried
	// through the reordering untouched.
	Ref int
}

type program struct {
	name  string
	prog  *vm.Program // nil: a business rule without When applies to all
	class class       // what a filter's verdict depends on (see Bound)
	fn    pred        // prog compiled to Go, or nil: prog runs in the VM
}

// newProgram wraps a compiled expression (nil for a business rule that
// always applies).
func newProgram(name string, p *vm.Program) program {
	if p == nil {
		return program{name: name}
	}
	return program{name: name, prog: p, class: classify(p), fn: compilePred(p.Node())}
}

type business struct {
	program
	action string
	amount float32
	by     string
	max    int
}

// Set is a compiled rule set. It is immutable and safe for concurrent use.
type Set struct {
	filters  []program
	boosts   []business
	caps     []business
	vms      sync.Pool // *vm.VM: a VM keeps its stack between runs
	capState sync.Pool // *capState: applyCaps's counts, cleared and reused
	runtimeE atomic.Uint64
}

// Compile validates cfg and compiles every expression against Env. All
// problems are reported together, each with its rule's key and name and, for
// expressions, the 1-based line and column.
func Compile(cfg Config) (*Set, error) {
	var errs []error
	for _, err := range cfg.problems() {
		errs = append(errs, fmt.Errorf("rules.%w", err))
	}
	s := &Set{vms: sync.Pool{New: func() any { return new(vm.VM) }}}
	for i, f := range cfg.Filters {
		p, err := compile(f.Expr)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules.filters[%d] %q: %w", i, f.Name, err))
			continue
		}
		s.filters = append(s.filters, newProgram(f.Name, p))
	}
	for i, b := range cfg.Business {
		r := business{program: program{name: b.Name}, action: b.Action, amount: float32(b.Amount), by: b.By, max: b.Max}
		if b.When != "" {
			p, err := compile(b.When)
			if err != nil {
				errs = append(errs, fmt.Errorf("rules.business[%d] %q: %w", i, b.Name, err))
				continue
			}
			r.program = newProgram(b.Name, p)
		}
		switch b.Action {
		case ActionBoost:
			s.boosts = append(s.boosts, r)
		case ActionCap:
			s.caps = append(s.caps, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// compile type-checks src against Env and requires a bool. A panic inside
// the compiler (outside input reaches it) becomes an error rather than
// taking the process down at load time.
func compile(src string) (p *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("compiler panic: %v", r)
		}
	}()
	p, err = expr.Compile(src, expr.Env(Env{}), expr.AsBool())
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			// expr counts columns from 0; editors and people count from 1.
			return nil, fmt.Errorf("line %d, column %d: %s", fe.Line, fe.Column+1, fe.Message)
		}
		return nil, err
	}
	return p, nil
}

// RuntimeErrors counts evaluations that failed at run time (for example an
// index out of range). A failing filter drops the item and a failing
// condition does not fire: for rules such as age limits, failing closed is
// the safe side. The engine exports this as a metric.
func (s *Set) RuntimeErrors() uint64 { return s.runtimeE.Load() }

// Len is the number of filter and business rules.
func (s *Set) Len() (filters, business int) { return len(s.filters), len(s.boosts) + len(s.caps) }

// eval runs p on env (compiled, or with m), treating a run-time error as
// false.
func (s *Set) eval(m *vm.VM, p *program, env *Env) bool {
	if p.fn != nil {
		return p.fn(env)
	}
	out, err := m.Run(p.prog, env)
	if err != nil {
		s.runtimeE.Add(1)
		return false
	}
	b, _ := out.(bool)
	return b
}

// Keep reports whether the item env points at passes every filter rule.
// It allocates nothing of its own; reading string and float fields through
// expr's reflection still boxes them.
func (s *Set) Keep(env *Env) bool {
	if len(s.filters) == 0 {
		return true
	}
	m := s.vms.Get().(*vm.VM)
	keep := true
	for i := range s.filters {
		if !s.eval(m, &s.filters[i], env) {
			keep = false
			break
		}
	}
	s.vms.Put(m)
	return keep
}

// Apply runs the business rules over cands in place: it adds every matching
// boost to the score, sorts by score descending (stable, so equal scores keep
// retrieval order), then enforces caps. env carries the request (user,
// query); its item is overwritten.
//
// Items over a cap move after all others, in score order, rather than being
// dropped: the engine asks for more candidates than it returns, so the head
// of the list still honours every cap, while a small candidate pool still
// fills k instead of returning short pages. A caller that wants a hard cap
// truncates at the first candidate whose Fired holds the cap rule.
func (s *Set) Apply(cands []Candidate, env *Env) {
	if len(s.boosts) == 0 && len(s.caps) == 0 {
		return
	}
	m := s.vms.Get().(*vm.VM)
	defer s.vms.Put(m)
	if len(s.boosts) > 0 {
		fired := false
		for i := range cands {
			c := &cands[i]
			env.SetItem(c.Item)
			for j := range s.boosts {
				r := &s.boosts[j]
				if r.prog == nil || s.eval(m, &r.program, env) {
					c.Score += r.amount
					c.Fired = append(c.Fired, r.name)
					fired = true
				}
			}
		}
		byScore := func(a, b Candidate) int { return cmp.Compare(b.Score, a.Score) }
		if fired || !slices.IsSortedFunc(cands, byScore) {
			slices.SortStableFunc(cands, byScore)
		}
	}
	if len(s.caps) > 0 {
		s.applyCaps(m, cands, env)
	}
}

// capState is applyCaps's scratch: per cap rule, items kept per brand or
// category, and whether the rule applies to the candidate at hand.
type capState struct {
	counts  []map[string]int
	applies []bool
	over    []Candidate
}

func (s *Set) applyCaps(m *vm.VM, cands []Candidate, env *Env) {
	st, _ := s.capState.Get().(*capState)
	if st == nil {
		st = &capState{counts: make([]map[string]int, len(s.caps)), applies: make([]bool, len(s.caps))}
		for i := range st.counts {
			st.counts[i] = map[string]int{}
		}
	}
	counts, applies, over := st.counts, st.applies, st.over
	kept := 0
	for i := range cands {
		c := cands[i]
		env.SetItem(c.Item)
		held := false
		for j := range s.caps {
			r := &s.caps[j]
			key := c.Item.Brand
			if r.by == ByCategory {
				key = c.Item.Category
			}
			// An item without a brand (or category) is in no group, so no
			// cap holds it back.
			applies[j] = key != "" && (r.prog == nil || s.eval(m, &r.program, env))
			if applies[j] && counts[j][key] >= r.max {
				held = true
				c.Fired = append(c.Fired, r.name)
			}
		}
		if held {
			over = append(over, c)
			continue
		}
		// Only items that stay in the head count towards a cap, so a held
		// item never uses up a slot another rule would grant.
		for j := range s.caps {
			if applies[j] {
				key := c.Item.Brand
				if s.caps[j].by == ByCategory {
					key = c.Item.Category
				}
				counts[j][key]++
			}
		}
		cands[kept] = c
		kept++
	}
	copy(cands[kept:], over)
	for _, c := range counts {
		clear(c)
	}
	clear(over) // no candidate pointers kept in the pool
	st.over = over[:0]
	s.capState.Put(st)
}
