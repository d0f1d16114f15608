package rules

import (
	"errors"
	"fmt"
	"math"
)

// Business rule actions.
const (
	ActionBoost = "boost"
	ActionCap   = "cap"
)

// Cap groupings.
const (
	ByBrand    = "brand"
	ByCategory = "category"
)

// Config is the rules section of the configuration.
type Config struct {
	Filters  []FilterRule   `yaml:"filters"`
	Business []BusinessRule `yaml:"business"`
}

// FilterRule keeps an item only when Expr is true.
type FilterRule struct {
	Name string `yaml:"name"`
	Expr string `yaml:"expr"`
}

// BusinessRule changes scores or order after ranking.
type BusinessRule struct {
	Name string `yaml:"name"`
	// When selects the items the rule applies to; empty means every item.
	When   string `yaml:"when"`
	Action string `yaml:"action"` // boost | cap
	// Amount is added to the score of matching items (boost); negative
	// downscores.
	Amount float64 `yaml:"amount"`
	// By and Max: at most Max matching items per brand or category lead the
	// list (cap).
	By  string `yaml:"by"`
	Max int    `yaml:"max"`
}

// Validate reports every structural problem, each naming its key. Expression
// errors need the compiler and are reported by Compile.
func (c Config) Validate() error {
	return errors.Join(c.problems()...)
}

func (c Config) problems() []error {
	var errs []error
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
	for i, b := range c.Business {
		key := fmt.Sprintf("business[%d]", i)
		name(key, b.Name)
		switch b.Action {
		case ActionBoost:
			if b.Amount == 0 || math.IsNaN(b.Amount) || math.IsInf(b.Amount, 0) {
				errs = append(errs, fmt.Errorf("%s.amount: must be a finite non-zero number for boost", key))
			}
			if b.By != "" || b.Max != 0 {
				errs = append(errs, fmt.Errorf("%s: by and max apply only to cap", key))
			}
		case ActionCap:
			if b.By != ByBrand && b.By != ByCategory {
				errs = append(errs, fmt.Errorf("%s.by: must be brand or category, got %q", key, b.By))
			}
			if b.Max <= 0 {
				errs = append(errs, fmt.Errorf("%s.max: must be > 0", key))
			}
			if b.Amount != 0 {
				errs = append(errs, fmt.Errorf("%s.amount: applies only to boost", key))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.action: must be boost or cap, got %q", key, b.Action))
		}
	}
	return errs
}
