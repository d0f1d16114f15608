package rules

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

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
	action         string
	amount, factor float32
	by             string
	max            int
	items          []string
	position       int
	lambda         float32
}

// Set is a compiled rule set. It is immutable and safe for concurrent use.
type Set struct {
	filters []program
	// Business rules by stage, each in configuration order.
	scores    []business // boost, bury
	hides     []business
	caps      []business
	pins      []business
	explores  []business
	diversity *business
	loc       *time.Location
	vms       sync.Pool // *vm.VM: a VM keeps its stack between runs
	runtimeE  atomic.Uint64
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
	s.loc = time.UTC
	if cfg.TimeZone != "" {
		if loc, err := time.LoadLocation(cfg.TimeZone); err == nil {
			s.loc = loc
		}
	}
	for i, b := range cfg.Business {
		r := business{program: program{name: b.Name}, action: b.Action, amount: float32(b.Amount), factor: float32(b.Factor),
			by: b.By, max: b.Max, items: b.Items, position: b.Position, lambda: float32(b.Lambda)}
		if b.When != "" {
			p, err := compile(b.When)
			if err != nil {
				errs = append(errs, fmt.Errorf("rules.business[%d] %q: %w", i, b.Name, err))
				continue
			}
			if b.Action == ActionPin && readsItem(p) {
				errs = append(errs, fmt.Errorf("rules.business[%d] %q: when: a pin's condition is on the request (query, user, surface, hour, context), not on item", i, b.Name))
				continue
			}
			r.program = newProgram(b.Name, p)
		}
		switch b.Action {
		case ActionBoost, ActionBury:
			s.scores = append(s.scores, r)
		case ActionHide:
			s.hides = append(s.hides, r)
		case ActionCap:
			s.caps = append(s.caps, r)
		case ActionPin:
			s.pins = append(s.pins, r)
		case ActionExplore:
			s.explores = append(s.explores, r)
		case ActionDiversity:
			s.diversity = &r
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
func (s *Set) RuntimeErrors() uint64 {
	if s == nil {
		return 0
	}
	return s.runtimeE.Load()
}

// Len is the number of filter and business rules.
func (s *Set) Len() (filters, business int) {
	n := len(s.scores) + len(s.hides) + len(s.caps) + len(s.pins) + len(s.explores)
	if s.diversity != nil {
		n++
	}
	return len(s.filters), n
}

// NewEnv starts the environment of one request with its hour and weekday
// in the rules' time zone.
func (s *Set) NewEnv(userID string, userAge int, query string, now time.Time) *Env {
	env := NewEnv(userID, userAge, query, now)
	if s != nil && s.loc != nil {
		local := now.In(s.loc)
		env.Hour, env.Weekday = local.Hour(), int(local.Weekday())
	}
	return env
}

// readsItem reports whether an expression reads any item field.
func readsItem(p *vm.Program) bool {
	c := &classifier{fields: map[ast.Node]bool{}}
	n := p.Node()
	ast.Walk(&n, c)
	for _, id := range c.idents {
		if id.Value == "item" {
			return true
		}
	}
	return false
}

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
