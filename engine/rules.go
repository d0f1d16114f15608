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
// rules, whose verdicts the generation remembers where they depend only on
// the item and the user's age. The index calls it from the searching
// goroutine only, so one Env serves the whole request.
func (e *Engine) keep(g *Generation, in stageInput, now time.Time) index.Filter {
	f := g.filter
	env := rules.NewEnv(in.user.ID, in.user.Age, in.query, now)
	cf := g.cols.compile(&in.filters)
	return func(id int32) bool {
		if len(in.exclude) > 0 && in.exclude[id] {
			return false
		}
		if !cf.match(id) {
			return false
		}
		return f.Keep(id, env)
	}
}

// applyRules orders the scored candidates and applies the business rules.
// Each returned candidate's Ref indexes hits and the feature rows.
func (e *Engine) applyRules(g *Generation, hits []candidate, scores []float32, in stageInput, now time.Time, sc *scratch) []rules.Candidate {
	cands := grow(sc.ranked, len(hits))[:len(hits)]
	sc.ranked = cands
	for i, h := range hits {
		cands[i] = rules.Candidate{Item: &g.items[h.id], Score: scores[i], Ref: i}
	}
	// Equal scores keep retrieval order (Ref).
	slices.SortFunc(cands, func(a, b rules.Candidate) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Ref, b.Ref)
	})
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
