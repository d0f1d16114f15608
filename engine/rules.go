package engine

import (
	"time"

	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/rules"
	"github.com/viterin/vek/vek32"
)

// bindRules sets the rules the request runs with: a dry run's own set,
// bound to the generation's catalog for this request only, or the live
// rules bound to it.
func (in *stageInput) bindRules(g *Generation, dry *rules.Set) {
	if dry != nil {
		in.bound, in.dry = dry.Bind(in.v.items()), true
		return
	}
	in.bound = in.v.filter()
}

// rulesEnv is the environment the request's rules see. One serves the
// whole request: the filter, the pins and the business rules run one
// after another on the request's goroutine, each pointing it at the item
// it asks about.
func (in *stageInput) rulesEnv(now time.Time) *rules.Env {
	env := in.bound.Set().NewEnv(in.user.ID, in.user.Age, in.query, now)
	env.Surface, env.Context = in.surface, in.context
	env.User.Recent = in.history
	return env
}

// keep is the retrieval filter of one request: excluded items, the
// request's structured filters (cheap, first), then the configured filter
// rules, whose verdicts the generation remembers where they depend only on
// the item and the user's age. The index calls it from the searching
// goroutine only, so one Env serves the whole request.
func (e *Engine) keep(g *Generation, in stageInput, env *rules.Env) index.Filter {
	// The closure takes only what it reads: capturing in would copy the
	// whole request input to the heap.
	f, v, exclude := in.bound, in.v, in.exclude
	cf := v.columns().compile(&in.filters, v)
	return func(id int32) bool {
		if len(exclude) > 0 && exclude[id] {
			return false
		}
		if e := v.entry(id); e != nil {
			// Changed since the bundle: the rules judge the item as it is
			// now (its remembered verdicts are the bundle item's).
			if e.deleted || !cf.matchValues(e.cat, e.brand, e.item.Price) {
				return false
			}
			return f.KeepChanged(&e.item, e.verdicts, env)
		}
		if !cf.match(id) {
			return false
		}
		return f.Keep(id, env)
	}
}

// addPinned adds the items the request's pin rules place to the
// candidates when retrieval did not find them, so they are scored like
// the others; they still pass the filters.
func (e *Engine) addPinned(g *Generation, in stageInput, hits []candidate, keep index.Filter, env *rules.Env, sc *scratch) []candidate {
	pins := in.bound.Set().Pins(env)
	if len(pins) == 0 {
		return hits
	}
	added := false
	have := make(map[int32]bool, len(hits))
	for _, h := range hits {
		have[h.id] = true
	}
	for _, p := range pins {
		id, ok := in.v.lookup(p)
		if !ok || have[id] || !keep(id) {
			continue
		}
		// Found by neither source: their "not found" ranks, as for a
		// candidate one source did not list.
		c := candidate{id: id, exactID: id == in.exactID, seq: int32(len(hits)),
			ret: rank.Retrieval{Rank: len(hits), LexRank: e.cfg.Retrieval.LexicalDepth, DenseRank: e.cfg.Retrieval.DenseDepth}}
		if in.vec != nil {
			c.ret.DenseScore = vek32.Dot(in.vec, in.v.vector(id))
		}
		hits = append(hits, c)
		have[id] = true
		added = true
	}
	if added {
		relative(hits)
	}
	sc.cands = hits
	return hits
}

// applyRules orders the scored candidates and applies the business rules,
// returning at most k. Each candidate's Ref indexes hits and the feature
// rows.
func (e *Engine) applyRules(g *Generation, hits []candidate, scores []float32, in stageInput, env *rules.Env, sc *scratch) rules.Outcome {
	cands := grow(sc.ranked, len(hits))[:len(hits)]
	sc.ranked = cands
	set := in.bound.Set()
	div := set.HasDiversity()
	for i, h := range hits {
		cands[i] = rules.Candidate{Item: in.v.item(h.id), Score: scores[i], Ref: i, Locked: h.exactID}
		if div {
			cands[i].Vec = in.v.vector(h.id)
		}
	}
	out := set.Apply(cands, env, in.k)
	for _, d := range out.Dropped {
		e.m.ruleDrops.WithLabelValues(in.surface, d.Action).Inc()
	}
	return out
}

// contributions explains the ranker's score of one feature row, or says
// why it cannot (a model written elsewhere carries no Go form of itself).
func (e *Engine) contributions(g *Generation, row []float32, ranked bool) *Contributions {
	if !ranked {
		return &Contributions{Unavailable: "ranking failed for this request: the scores are retrieval's"}
	}
	method, base, phi, err := g.scorer.Explain(row)
	if err != nil {
		return &Contributions{Unavailable: err.Error()}
	}
	return &Contributions{Method: method, Base: base, Values: phi}
}
