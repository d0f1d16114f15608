package engine

import (
	"cmp"
	"slices"
	"time"

	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/rules"
)

// keep is the retrieval filter of one request: excluded items, the
// request's structured filters (cheap, first), then the configured filter
// rules. The index calls it from the searching goroutine only, so one Env
// serves the whole request.
func (e *Engine) keep(g *Generation, in stageInput, now time.Time) index.Filter {
	set := e.deps.Rules
	env := rules.NewEnv(in.user.ID, in.user.Age, in.query, now)
	return func(id int32) bool {
		if in.exclude[id] {
			return false
		}
		it := &g.items[id]
		if !in.filters.match(it) {
			return false
		}
		if set == nil {
			return true
		}
		env.SetItem(it)
		return set.Keep(env)
	}
}

// applyRules orders the scored candidates and applies the business rules.
// Each returned candidate's Ref indexes hits and the feature rows.
func (e *Engine) applyRules(g *Generation, hits []candidate, scores []float32, in stageInput, now time.Time) []rules.Candidate {
	cands := make([]rules.Candidate, len(hits))
	for i, h := range hits {
		cands[i] = rules.Candidate{Item: &g.items[h.id], Score: scores[i], Ref: i}
	}
	// Stable, so equal scores keep retrieval order.
	slices.SortStableFunc(cands, func(a, b rules.Candidate) int { return cmp.Compare(b.Score, a.Score) })
	if e.deps.Rules != nil {
		e.deps.Rules.Apply(cands, rules.NewEnv(in.user.ID, in.user.Age, in.query, now))
	}
	return cands
}

// pinExact moves the item whose id the query is to the top: a query that
// names an item is a lookup, and no score should outrank it.
func pinExact(ranked []rules.Candidate, hits []candidate) {
	for i, c := range ranked {
		if hits[c.Ref].exactID {
			copy(ranked[1:i+1], ranked[:i])
			ranked[0] = c
			return
		}
	}
}
