package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Business rule actions.
const (
	// ActionBoost raises matching items: Amount added to the score, or the
	// score's distance above the lowest candidate's multiplied by Factor
	// (> 1). A negative Amount lowers them (as ActionBury does).
	ActionBoost = "boost"
	// ActionBury lowers matching items: Amount (> 0) subtracted, or the
	// distance above the lowest candidate multiplied by Factor (in (0, 1)).
	ActionBury = "bury"
	// ActionCap keeps at most Max items per brand or category (By) among
	// those matching When in the top k, filling from the next candidates in
	// score order; only when too few others remain does an item over the
	// cap fill a slot, and the trace says so.
	ActionCap = "cap"
	// ActionPin puts Items at Position (1-based) and after, in that order,
	// when the request condition When holds (it may not read the item).
	ActionPin = "pin"
	// ActionHide removes matching items (items the user just bought, say).
	ActionHide = "hide"
	// ActionDiversity orders the top k by maximal marginal relevance over
	// the items' embeddings: Lambda weighs the score against the largest
	// similarity to an item already placed (1 is score order).
	ActionDiversity = "diversity"
	// ActionExplore reserves Position for the best-scored item matching
	// When that would not otherwise be shown (new items, say), marked in
	// the impression so its clicks can be told apart.
	ActionExplore = "explore"
)

// Actions lists the business rule actions.
var Actions = []string{ActionBoost, ActionBury, ActionCap, ActionPin, ActionHide, ActionDiversity, ActionExplore}

// Cap groupings.
const (
	ByBrand    = "brand"
	ByCategory = "category"
)

// MaxPinned bounds the items one pin rule names.
const MaxPinned = 50

// Config is the rules section of the configuration (or a rules file).
type Config struct {
	Filters  []FilterRule   `yaml:"filters"`
	Business []BusinessRule `yaml:"business"`
	// TimeZone is the IANA zone of the hour and weekday conditions see;
	// empty is UTC.
	TimeZone string `yaml:"time_zone,omitempty"`
	// File, in the configuration only, is a rules file (time_zone,
	// filters, business) used instead of the rules written here: serve
	// checks it every ReloadEvery and makes a changed file live once it
	// validates and compiles, keeping the old rules otherwise.
	File        string        `yaml:"file,omitempty"`
	ReloadEvery time.Duration `yaml:"reload_every,omitempty"`
}

// ParseFile reads a rules file: YAML with time_zone, filters and business
// only (unknown keys are errors), validated and compiled. The error names
// the key path and, for an expression, its line and column.
func ParseFile(data []byte) (Config, *Set, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, nil, fmt.Errorf("rules file: %w", err)
	}
	if c.File != "" || c.ReloadEvery != 0 {
		return Config{}, nil, errors.New("rules file: file and reload_every belong in the configuration, not the rules file")
	}
	s, err := Compile(c)
	if err != nil {
		return Config{}, nil, fmt.Errorf("rules file: %w", err)
	}
	return c, s, nil
}

// FilterRule keeps an item only when Expr is true.
type FilterRule struct {
	Name string `yaml:"name"`
	Expr string `yaml:"expr"`
}

// BusinessRule changes scores or order after ranking. Which fields apply
// depends on Action (see the Action constants).
type BusinessRule struct {
	Name string `yaml:"name"`
	// When selects the items the rule applies to (for pin: the requests);
	// empty means every one.
	When   string `yaml:"when,omitempty"`
	Action string `yaml:"action"`
	// Amount and Factor: boost and bury, exactly one of them.
	Amount float64 `yaml:"amount,omitempty"`
	Factor float64 `yaml:"factor,omitempty"`
	// By and Max: cap.
	By  string `yaml:"by,omitempty"`
	Max int    `yaml:"max,omitempty"`
	// Items and Position: pin; Position also places an explore slot.
	Items    []string `yaml:"items,omitempty"`
	Position int      `yaml:"position,omitempty"`
	// Lambda: diversity.
	Lambda float64 `yaml:"lambda,omitempty"`
}

// Validate reports every structural problem, each naming its key. Expression
// errors need the compiler and are reported by Compile.
func (c Config) Validate() error {
	return errors.Join(c.problems()...)
}

func (c Config) problems() []error {
	var errs []error
	if c.ReloadEvery < 0 {
		errs = append(errs, errors.New("reload_every: must be >= 0 (0 means every 2s)"))
	}
	// Names must be unique across both lists because explain traces and
	// metrics identify a rule by name alone.
	seen := map[string]string{}
	name := func(key, n string) {
		switch prev, dup := seen[n]; {
		case n == "":
			errs = append(errs, fmt.Errorf("%s.name: must not be empty", key))
		case dup:
			errs = append(errs, fmt.Errorf("%s.name: duplicate %q (also %s)", key, n, prev))
		default:
			seen[n] = key
		}
	}
	for i, f := range c.Filters {
		key := fmt.Sprintf("filters[%d]", i)
		name(key, f.Name)
		if f.Expr == "" {
			errs = append(errs, fmt.Errorf("%s.expr: must not be empty", key))
		}
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("time_zone: %v", err))
		}
	}
	diversity := 0
	for i, b := range c.Business {
		key := fmt.Sprintf("business[%d]", i)
		name(key, b.Name)
		errs = append(errs, b.problems(key)...)
		if b.Action == ActionDiversity {
			if diversity++; diversity == 2 {
				errs = append(errs, fmt.Errorf("%s: only one diversity rule", key))
			}
		}
	}
	return errs
}

// problems checks one business rule's fields against its action.
func (b BusinessRule) problems(key string) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", key, field, fmt.Sprintf(format, args...)))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	// The fields each action reads; any other set is a mistake.
	uses := map[string][]string{
		ActionBoost: {"amount", "factor"}, ActionBury: {"amount", "factor"}, ActionCap: {"by", "max"},
		ActionPin: {"items", "position"}, ActionHide: nil, ActionDiversity: {"lambda"}, ActionExplore: {"position"},
	}
	fields, ok := uses[b.Action]
	if !ok {
		bad("action", "must be one of %s, got %q", strings.Join(Actions, ", "), b.Action)
		return errs
	}
	set := map[string]bool{"amount": b.Amount != 0, "factor": b.Factor != 0, "by": b.By != "", "max": b.Max != 0,
		"items": len(b.Items) > 0, "position": b.Position != 0, "lambda": b.Lambda != 0}
	for _, f := range []string{"amount", "factor", "by", "max", "items", "position", "lambda"} {
		if set[f] && !slices.Contains(fields, f) {
			bad(f, "does not apply to %s", b.Action)
		}
	}
	switch b.Action {
	case ActionBoost, ActionBury:
		switch {
		case set["amount"] == set["factor"]:
			bad("amount", "set exactly one of amount and factor for %s", b.Action)
		case set["amount"] && !finite(b.Amount):
			bad("amount", "must be finite")
		case set["amount"] && b.Action == ActionBury && b.Amount < 0:
			bad("amount", "must be > 0 for bury (it is subtracted)")
		case set["factor"] && b.Action == ActionBoost && !(b.Factor > 1 && finite(b.Factor)):
			bad("factor", "must be > 1 for boost, got %g", b.Factor)
		case set["factor"] && b.Action == ActionBury && !(b.Factor > 0 && b.Factor < 1):
			bad("factor", "must be in (0, 1) for bury, got %g", b.Factor)
		}
	case ActionCap:
		if b.By != ByBrand && b.By != ByCategory {
			bad("by", "must be brand or category, got %q", b.By)
		}
		if b.Max <= 0 {
			bad("max", "must be > 0")
		}
	case ActionPin:
		if len(b.Items) == 0 || len(b.Items) > MaxPinned {
			bad("items", "must name 1 to %d items", MaxPinned)
		}
		for j, id := range b.Items {
			if id == "" || slices.Contains(b.Items[:j], id) {
				bad(fmt.Sprintf("items[%d]", j), "must be a distinct, non-empty item id")
			}
		}
		if b.Position < 1 {
			bad("position", "must be >= 1")
		}
	case ActionHide:
		if b.When == "" {
			bad("when", "required for hide (hiding every item is a filter of everything)")
		}
	case ActionDiversity:
		if !(b.Lambda > 0 && b.Lambda <= 1) {
			bad("lambda", "must be in (0, 1], got %g", b.Lambda)
		}
		if b.When != "" {
			bad("when", "does not apply to diversity (it orders the whole list)")
		}
	case ActionExplore:
		if b.Position < 1 {
			bad("position", "must be >= 1")
		}
		if b.When == "" {
			bad("when", "required for explore (which items may take the slot)")
		}
	}
	return errs
}
