package rules

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/expr-lang/expr/vm"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/internal/permsort"
	"github.com/viterin/vek/vek32"
)

// Candidate is one scored item as business rules see it. The caller sets
// Item, Score, Ref and, for a diversity rule, Vec; Apply fills the rest.
type Candidate struct {
	Item  *catalog.Item
	Score float32
	// Ref is the caller's own index (into its feature rows, say), carried
	// through the reordering untouched.
	Ref int
	// Vec is the item's unit embedding, read by a diversity rule only.
	Vec []float32
	// Locked puts the candidate first whatever the rules say: a query
	// that names an item's id is a lookup.
	Locked bool

	// Base and BasePos are the ranker's score and the 0-based position in
	// the ranker's order, before any rule.
	Base    float32
	BasePos int
	// Explore marks an item placed by an exploration slot.
	Explore bool
	// Pinned marks an item placed by a pin rule.
	Pinned bool
	// Effects are the rules that changed this candidate, in the order
	// they acted.
	Effects []Effect
}

// Fired names the rules that changed the candidate, in order.
func (c *Candidate) Fired() []string {
	if len(c.Effects) == 0 {
		return nil
	}
	out := make([]string, len(c.Effects))
	for i, e := range c.Effects {
		out[i] = e.Rule
	}
	return out
}

// Effect is what one rule did to one candidate. Positions are 0-based;
// -1 is "not in the list". A score rule's positions are the candidate's
// rank before and after the score stage; an order rule's (cap, pin,
// explore, diversity) its rank by score and its final position.
type Effect struct {
	Rule        string  `json:"rule"`
	Action      string  `json:"action"`
	ScoreBefore float32 `json:"score_before"`
	ScoreAfter  float32 `json:"score_after"`
	PosBefore   int     `json:"position_before"`
	PosAfter    int     `json:"position_after"`
	// Note says what an order rule did ("over the cap of 3 per brand
	// \"Acme\": no other candidate left", "slot 4").
	Note string `json:"note,omitempty"`
}

// Drop is a candidate a business rule kept out of the list, with the
// position it would have had by score.
type Drop struct {
	Item     *catalog.Item
	Ref      int
	Rule     string
	Action   string
	Reason   string
	Position int
}

// Outcome is Apply's answer: at most k candidates in their final order,
// and the candidates that rules removed from it (a hidden item, the item
// a cap skipped although its score placed it in the top k, the item an
// exploration slot or a pin pushed out). Candidates that simply scored
// below the k-th are neither.
type Outcome struct {
	Ranked  []Candidate
	Dropped []Drop
}

// Pins are the item ids the pin rules place for this request, in rule
// order: the caller adds those it did not retrieve to the candidates (they
// still pass the filters) before scoring, so Apply can place them.
func (s *Set) Pins(env *Env) []string {
	if s == nil || len(s.pins) == 0 {
		return nil
	}
	m := s.vms.Get().(*vm.VM)
	defer s.vms.Put(m)
	var out []string
	for i := range s.pins {
		r := &s.pins[i]
		if r.prog == nil || s.eval(m, &r.program, env) {
			for _, id := range r.items {
				if !slices.Contains(out, id) {
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// HasDiversity reports whether a diversity rule reads the candidates'
// vectors.
func (s *Set) HasDiversity() bool { return s != nil && s.diversity != nil }

// sorters are Apply's buffers for ordering the candidates.
var sorters = sync.Pool{New: func() any { return new(permsort.Buffers[Candidate]) }}

// Apply orders cands by score and applies the business rules in stages:
// boost and bury change scores (a Factor scales the distance above the
// lowest candidate's score, so it works whatever the ranker's scale);
// hide removes items; the top k are then chosen in score order (or by
// maximal marginal relevance under a diversity rule) subject to the caps,
// each a true constraint: an item over a cap is skipped for the next
// candidate and placed only when no candidate within every cap is left;
// exploration slots and pins take their positions; a Locked candidate
// goes first. env is moved from item to item; its item is overwritten.
// cands is reordered in place and Outcome.Ranked aliases it.
func (s *Set) Apply(cands []Candidate, env *Env, k int) Outcome {
	sorter := sorters.Get().(*permsort.Buffers[Candidate])
	defer sorters.Put(sorter)
	byScore := func(a, b *Candidate) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Ref, b.Ref)
	}
	sorter.Sort(cands, byScore)
	for i := range cands {
		cands[i].Base, cands[i].BasePos = cands[i].Score, i
		cands[i].Effects, cands[i].Explore, cands[i].Pinned = nil, false, false
	}
	k = min(k, len(cands))
	if s == nil || k <= 0 {
		return Outcome{Ranked: cands[:max(k, 0)]}
	}
	m := s.vms.Get().(*vm.VM)
	defer s.vms.Put(m)
	a := applier{s: s, m: m, env: env}

	if len(s.scores) > 0 && a.score(cands) {
		sorter.Sort(cands, byScore)
		for i := range cands {
			for j := range cands[i].Effects {
				cands[i].Effects[j].PosAfter = i
			}
		}
	}
	// The score order every later stage's "position before" refers to:
	// rank[ref] is the position of the candidate with that Ref, filled
	// only when an order rule left a trace to place.
	var rank []int
	rankOf := func(ref int) int {
		if rank == nil {
			top := 0
			for i := range cands {
				top = max(top, cands[i].Ref)
			}
			rank = make([]int, top+1)
			for i := range cands {
				if cands[i].Ref >= 0 {
					rank[cands[i].Ref] = i
				}
			}
		}
		if ref < 0 || ref >= len(rank) {
			return -1
		}
		return rank[ref]
	}
	pool := a.hide(cands)
	head := a.choose(pool, k)
	head = a.explore(head, pool, k)
	head = a.pin(head, pool, k)
	head = lockFirst(head, pool, k)

	// Final positions of the order rules' effects.
	for i := range head {
		for j := range head[i].Effects {
			e := &head[i].Effects[j]
			if e.Action != ActionBoost && e.Action != ActionBury {
				e.PosBefore, e.PosAfter = rankOf(head[i].Ref), i
			}
		}
	}
	for i := range a.dropped {
		a.dropped[i].Position = rankOf(a.dropped[i].Ref)
	}
	// Ranked aliases cands: the chosen ones go to its front.
	out := cands[:len(head)]
	copy(out, head)
	return Outcome{Ranked: out, Dropped: a.dropped}
}

type applier struct {
	s       *Set
	m       *vm.VM
	env     *Env
	dropped []Drop
}

func (a *applier) when(r *business, c *Candidate) bool {
	if r.prog == nil {
		return true
	}
	a.env.SetItem(c.Item)
	return a.s.eval(a.m, &r.program, a.env)
}

// score applies boost and bury, reporting whether any fired.
func (a *applier) score(cands []Candidate) bool {
	lo := cands[len(cands)-1].Score // cands is in score order
	fired := false
	for i := range cands {
		c := &cands[i]
		for j := range a.s.scores {
			r := &a.s.scores[j]
			if !a.when(r, c) {
				continue
			}
			before := c.Score
			switch {
			case r.factor != 0:
				c.Score = lo + (c.Score-lo)*r.factor
			case r.action == ActionBury:
				c.Score -= r.amount
			default:
				c.Score += r.amount
			}
			c.Effects = append(c.Effects, Effect{Rule: r.name, Action: r.action, ScoreBefore: before, ScoreAfter: c.Score, PosBefore: i})
			fired = true
		}
	}
	return fired
}

// hide removes the candidates a hide rule matches, keeping the order. A
// locked candidate is never hidden: the query asked for it by id.
func (a *applier) hide(cands []Candidate) []Candidate {
	if len(a.s.hides) == 0 {
		return cands
	}
	kept := make([]Candidate, 0, len(cands))
	for i := range cands {
		c := &cands[i]
		hidden := false
		for j := range a.s.hides {
			r := &a.s.hides[j]
			if !c.Locked && a.when(r, c) {
				a.dropped = append(a.dropped, Drop{Item: c.Item, Ref: c.Ref, Rule: r.name, Action: r.action, Reason: "hidden"})
				hidden = true
				break
			}
		}
		if !hidden {
			kept = append(kept, *c)
		}
	}
	return kept
}

// capKey is the group a cap rule counts c in, or "" when the rule does
// not apply to it (no brand, say, or its condition is false).
func (a *applier) capKey(r *business, c *Candidate) string {
	key := c.Item.Brand
	if r.by == ByCategory {
		key = c.Item.Category
	}
	if key == "" || !a.when(r, c) {
		return ""
	}
	return key
}

// choose picks k candidates from pool (in score order): the next by score,
// or by maximal marginal relevance with a diversity rule, among those that
// keep every cap; an item over a cap is placed only when none is left, and
// the skipped items that end up outside the list are reported as dropped.
func (a *applier) choose(pool []Candidate, k int) []Candidate {
	caps := a.s.caps
	div := a.s.diversity
	if len(caps) == 0 && div == nil {
		return slices.Clone(pool[:min(k, len(pool))])
	}
	// keys[i*len(caps)+j] is candidate i's group under cap j.
	keys := make([]string, len(pool)*len(caps))
	for i := range pool {
		for j := range caps {
			keys[i*len(caps)+j] = a.capKey(&caps[j], &pool[i])
		}
	}
	counts := make([]map[string]int, len(caps))
	for j := range counts {
		counts[j] = map[string]int{}
	}
	over := func(i int) int { // the first cap candidate i would break, or -1
		for j := range caps {
			if key := keys[i*len(caps)+j]; key != "" && counts[j][key] >= caps[j].max {
				return j
			}
		}
		return -1
	}
	var rel, maxSim []float32
	if div != nil {
		// Relevance is the score scaled to [0, 1] over the pool, so it
		// weighs against a cosine similarity whatever the ranker's scale.
		hi, lo := pool[0].Score, pool[len(pool)-1].Score
		rel = make([]float32, len(pool))
		maxSim = make([]float32, len(pool))
		for i := range pool {
			if hi > lo {
				rel[i] = (pool[i].Score - lo) / (hi - lo)
			} else {
				rel[i] = 1
			}
			maxSim[i] = float32(math.Inf(-1))
		}
	}
	mmr := func(i int) float32 {
		if maxSim[i] == float32(math.Inf(-1)) {
			return div.lambda * rel[i]
		}
		return div.lambda*rel[i] - (1-div.lambda)*maxSim[i]
	}
	used := make([]bool, len(pool))
	next := 0                // the first candidate not yet chosen
	skipped := map[int]int{} // pool index -> the cap rule that skipped it
	head := make([]Candidate, 0, k)
	for len(head) < k && len(head) < len(pool) {
		best, bestOver := -1, -1
		for i := range pool {
			if used[i] {
				continue
			}
			j := over(i)
			if j >= 0 {
				if _, ok := skipped[i]; !ok {
					skipped[i] = j
				}
			}
			better := best < 0 ||
				(j < 0 && bestOver >= 0) || // within every cap beats over one
				((j < 0) == (bestOver < 0) && div != nil && mmr(i) > mmr(best))
			if better {
				best, bestOver = i, j
			}
			if j < 0 && div == nil {
				break // score order: the first within the caps wins
			}
		}
		used[best] = true
		c := pool[best]
		if bestOver >= 0 {
			r := &caps[bestOver]
			c.Effects = append(c.Effects, Effect{Rule: r.name, Action: r.action, ScoreBefore: c.Score, ScoreAfter: c.Score,
				Note: fmt.Sprintf("over the cap of %d per %s %q: no candidate within the caps was left", r.max, r.by, keys[best*len(caps)+bestOver])})
		}
		for next < len(pool) && used[next] && next != best {
			next++
		}
		if div != nil && best != next {
			// Maximal marginal relevance chose other than the score order.
			c.Effects = append(c.Effects, Effect{Rule: div.name, Action: div.action, ScoreBefore: c.Score, ScoreAfter: c.Score})
		}
		head = append(head, c)
		for j := range caps {
			if key := keys[best*len(caps)+j]; key != "" {
				counts[j][key]++
			}
		}
		if div != nil && c.Vec != nil {
			for i := range pool {
				if !used[i] && pool[i].Vec != nil {
					if s := vek32.Dot(c.Vec, pool[i].Vec); s > maxSim[i] {
						maxSim[i] = s
					}
				}
			}
		}
	}
	// A skipped item that would not have made the top k by score anyway
	// was not dropped by the cap.
	for i, j := range skipped {
		if used[i] || i >= k {
			continue
		}
		r := &caps[j]
		a.dropped = append(a.dropped, Drop{Item: pool[i].Item, Ref: pool[i].Ref, Rule: r.name, Action: r.action,
			Reason: fmt.Sprintf("over the cap of %d per %s %q", r.max, r.by, keys[i*len(caps)+j])})
	}
	slices.SortFunc(a.dropped, func(x, y Drop) int { return cmp.Compare(x.Ref, y.Ref) })
	return head
}

// inHead reports the position of ref in head, or -1.
func inHead(head []Candidate, ref int) int {
	return slices.IndexFunc(head, func(c Candidate) bool { return c.Ref == ref })
}

// place puts c at position pos of head (at most k long), moving it if it
// is there already; an item pushed past k is reported as dropped by rule.
func (a *applier) place(head []Candidate, c Candidate, pos, k int, r *business) []Candidate {
	if at := inHead(head, c.Ref); at >= 0 {
		c = head[at]
		head = slices.Delete(head, at, at+1)
	}
	pos = min(pos, len(head))
	head = slices.Insert(head, pos, c)
	if len(head) > k {
		out := head[len(head)-1]
		a.dropped = append(a.dropped, Drop{Item: out.Item, Ref: out.Ref, Rule: r.name, Action: r.action,
			Reason: fmt.Sprintf("pushed out by %s %q", r.action, r.name)})
		head = head[:k]
	}
	return head
}

// explore gives each exploration rule's position to the best-scored
// candidate matching its condition that the list does not show yet.
func (a *applier) explore(head, pool []Candidate, k int) []Candidate {
	for j := range a.s.explores {
		r := &a.s.explores[j]
		if r.position > k {
			continue
		}
		for i := range pool {
			c := pool[i]
			if inHead(head, c.Ref) >= 0 || !a.when(r, &c) {
				continue
			}
			c.Explore = true
			c.Effects = append(c.Effects, Effect{Rule: r.name, Action: r.action, ScoreBefore: c.Score, ScoreAfter: c.Score,
				Note: fmt.Sprintf("exploration slot %d", r.position)})
			head = a.place(head, c, r.position-1, k, r)
			break
		}
	}
	return head
}

// pin places each firing pin rule's items, in order, from its position;
// an item that is not among the candidates (not retrieved and not added by
// the caller, or filtered out) is skipped.
func (a *applier) pin(head, pool []Candidate, k int) []Candidate {
	if len(a.s.pins) == 0 {
		return head
	}
	a.env.Item = ItemEnv{}
	for j := range a.s.pins {
		r := &a.s.pins[j]
		if r.prog != nil && !a.s.eval(a.m, &r.program, a.env) {
			continue
		}
		pos := r.position - 1
		for _, id := range r.items {
			if pos >= k {
				break
			}
			i := slices.IndexFunc(pool, func(c Candidate) bool { return c.Item.ID == id })
			if i < 0 {
				continue
			}
			c := pool[i]
			if at := inHead(head, c.Ref); at >= 0 {
				c = head[at]
			}
			c.Pinned = true
			c.Effects = append(c.Effects, Effect{Rule: r.name, Action: r.action, ScoreBefore: c.Score, ScoreAfter: c.Score,
				Note: fmt.Sprintf("pinned at %d", pos+1)})
			head = a.place(head, c, pos, k, r)
			pos++
		}
	}
	return head
}

// lockFirst moves the locked candidate to the front, from head or, when
// the rules left it out, from pool.
func lockFirst(head, pool []Candidate, k int) []Candidate {
	i := slices.IndexFunc(pool, func(c Candidate) bool { return c.Locked })
	if i < 0 {
		return head
	}
	c := pool[i]
	if at := inHead(head, c.Ref); at >= 0 {
		c = head[at]
		head = slices.Delete(head, at, at+1)
	} else if len(head) >= k {
		head = head[:k-1]
	}
	return slices.Insert(head, 0, c)
}
