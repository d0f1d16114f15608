package engine

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/viterin/vek/vek32"

	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/rank"
)

// Retrieval modes of a text query.
const (
	ModeHybrid  = "hybrid"
	ModeLexical = "lexical"
	ModeDense   = "dense"
)

// Fusion methods of hybrid retrieval.
const (
	FusionRRF      = "rrf"
	FusionWeighted = "weighted"
)

// RetrievalConfig is engine.retrieval: how text queries find candidates.
type RetrievalConfig struct {
	// Mode is the default for requests that do not set "retrieval".
	Mode string `yaml:"mode"`
	// Fusion merges the two lists of a hybrid query: rrf (reciprocal-rank
	// fusion, w / (rrf_k + rank) summed over the sources) or weighted (each
	// source's scores min-max normalised over its list, then the weighted
	// mean).
	Fusion string  `yaml:"fusion"`
	RRFK   float64 `yaml:"rrf_k"`
	// LexicalDepth and DenseDepth are how many candidates each source
	// gives a hybrid query (at least k); the merged list is cut to
	// engine.candidates.
	LexicalDepth int `yaml:"lexical_depth"`
	DenseDepth   int `yaml:"dense_depth"`
	// LexicalWeight and DenseWeight weigh the sources in either fusion.
	LexicalWeight float64 `yaml:"lexical_weight"`
	DenseWeight   float64 `yaml:"dense_weight"`
}

// DefaultRetrievalConfig is what config.yaml spells out.
func DefaultRetrievalConfig() RetrievalConfig {
	return RetrievalConfig{Mode: ModeHybrid, Fusion: FusionRRF, RRFK: 60, LexicalDepth: 100, DenseDepth: 100,
		LexicalWeight: 1, DenseWeight: 1}
}

// Validate reports every bad value with its key.
func (c RetrievalConfig) Validate() error {
	var errs []error
	if err := checkMode(c.Mode); err != nil {
		errs = append(errs, fmt.Errorf("mode: %w", err))
	}
	if c.Fusion != FusionRRF && c.Fusion != FusionWeighted {
		errs = append(errs, fmt.Errorf("fusion: must be %s or %s, got %q", FusionRRF, FusionWeighted, c.Fusion))
	}
	if !(c.RRFK >= 0 && c.RRFK <= 1e6) {
		errs = append(errs, fmt.Errorf("rrf_k: must be in [0, 1e6], got %v", c.RRFK))
	}
	for _, d := range []struct {
		key string
		v   int
	}{{"lexical_depth", c.LexicalDepth}, {"dense_depth", c.DenseDepth}} {
		if d.v < 1 || d.v > 10000 {
			errs = append(errs, fmt.Errorf("%s: must be in 1..10000, got %d", d.key, d.v))
		}
	}
	for _, w := range []struct {
		key string
		v   float64
	}{{"lexical_weight", c.LexicalWeight}, {"dense_weight", c.DenseWeight}} {
		if !(w.v >= 0 && w.v <= 1000) {
			errs = append(errs, fmt.Errorf("%s: must be in [0, 1000], got %v", w.key, w.v))
		}
	}
	if c.LexicalWeight+c.DenseWeight <= 0 {
		errs = append(errs, errors.New("lexical_weight, dense_weight: at least one must be > 0"))
	}
	return errors.Join(errs...)
}

func checkMode(m string) error {
	switch m {
	case ModeHybrid, ModeLexical, ModeDense:
		return nil
	}
	return fmt.Errorf("must be %s, %s or %s, got %q", ModeHybrid, ModeLexical, ModeDense, m)
}

// candidate is one item retrieval hands to ranking, with what each source
// said about it.
type candidate struct {
	id  int32
	ret rank.Retrieval
	// inLexical and inDense say which source lists hold it; exactID marks
	// the item whose id the query is.
	inLexical, inDense, exactID bool
	// seq is the order the sources found it in, the last tie-break.
	seq int32
	// srcs are the recommendation sources that listed it (src* bits) and
	// rrf its fused reciprocal-rank score.
	srcs uint8
	rrf  float64
}

// hitCandidates turns one vector search (or the popular list) into
// candidates: the lexical features keep their "not found" values.
func (e *Engine) hitCandidates(sc *scratch, hits []index.Hit, dense bool) []candidate {
	out := grow(sc.cands, len(hits))[:len(hits)]
	sc.cands = out
	for i, h := range hits {
		out[i] = candidate{id: h.ID, inDense: dense,
			ret: rank.Retrieval{Score: h.Score, Rank: i, LexRank: e.cfg.Retrieval.LexicalDepth, DenseRank: e.cfg.Retrieval.DenseDepth}}
		if dense {
			out[i].ret.DenseScore, out[i].ret.DenseRank = h.Score, i
		}
	}
	relative(out)
	return out
}

// relative sets the features that place each candidate against the best
// of the request: its lexical score's share of the best, its dense score's
// distance below the best.
func relative(cands []candidate) {
	var bestLex, bestDense float32
	for i, c := range cands {
		bestLex = max(bestLex, c.ret.LexScore)
		if i == 0 || c.ret.DenseScore > bestDense {
			bestDense = c.ret.DenseScore
		}
	}
	for i := range cands {
		c := &cands[i]
		if bestLex > 0 {
			c.ret.LexRatio = c.ret.LexScore / bestLex
		}
		c.ret.DenseGap = bestDense - c.ret.DenseScore
	}
}

// retrieveText runs the sources of a text query and merges them. Each
// candidate gets both scores whichever list found it: the lexical result
// scores every matching item, and a dense score is one dot product. The
// filter is called by one source at a time (it is not safe to share across
// goroutines).
func (e *Engine) retrieveText(g *Generation, in stageInput, keep index.Filter, sc *scratch) []candidate {
	rc := e.cfg.Retrieval
	limit := max(e.cfg.Candidates, in.k)
	lexDepth, denseDepth := max(rc.LexicalDepth, in.k), max(rc.DenseDepth, in.k)
	if in.mode != ModeHybrid {
		lexDepth, denseDepth = limit, limit
	}
	var (
		dense []index.Hit
		lex   *lexResult
	)
	if in.vec != nil && in.lex != nil && in.bound.PerRequest() {
		// The two sources ask about many of the same items, and a rule
		// evaluated per request costs far more than a map lookup (the
		// others' verdicts the generation remembers).
		memo, inner := make(map[int32]bool, 2*(denseDepth+lexDepth)), keep
		keep = func(id int32) bool {
			v, ok := memo[id]
			if !ok {
				v = inner(id)
				memo[id] = v
			}
			return v
		}
	}
	if in.vec != nil {
		start := time.Now()
		dense = in.v.searchDense(in.vec, denseDepth, keep)
		e.m.stage.WithLabelValues(in.surface, "retrieve_dense").Observe(time.Since(start).Seconds())
	}
	if in.lex != nil {
		start := time.Now()
		lex = in.v.searchLexical(*in.lex, in.query, lexDepth, keep)
		defer lex.Release()
		e.m.stage.WithLabelValues(in.surface, "retrieve_lexical").Observe(time.Since(start).Seconds())
	}
	pos := sc.pos
	cands := grow(sc.cands, len(dense)+lexLen(lex)+1)
	defer func() { sc.cands = cands }()
	add := func(id int32) *candidate {
		i, ok := pos[id]
		if !ok {
			i = len(cands)
			pos[id] = i
			cands = append(cands, candidate{id: id, seq: int32(i), ret: rank.Retrieval{LexRank: rc.LexicalDepth, DenseRank: rc.DenseDepth}})
		}
		return &cands[i]
	}
	for i, h := range dense {
		c := add(h.ID)
		c.inDense, c.ret.DenseRank, c.ret.DenseScore = true, i, h.Score
	}
	if lex != nil {
		for i, h := range lex.Hits {
			c := add(h.ID)
			c.inLexical, c.ret.LexRank = true, i
		}
	}
	if in.exactID >= 0 && keep(in.exactID) {
		add(in.exactID).exactID = true
	}
	for i := range cands {
		c := &cands[i]
		if lex != nil {
			c.ret.LexScore, c.ret.TitleShare = lex.Score(c.id), lex.TitleShare(c.id)
		}
		if in.vec != nil && !c.inDense {
			c.ret.DenseScore = vek32.Dot(in.vec, in.v.vector(c.id))
		}
		c.ret.Both = c.inLexical && c.inDense
		if in.lex != nil {
			c.ret.QueryWords = in.lex.Words()
		}
	}
	relative(cands)
	e.fuse(cands, in.mode, lex, dense)
	// A total order (seq last), so the unstable sort is deterministic and
	// ties keep the order the sources found them in.
	sc.sorter.Sort(cands, func(a, b *candidate) int {
		if a.exactID != b.exactID {
			if a.exactID {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.ret.Score, a.ret.Score); c != 0 {
			return c
		}
		if c := cmp.Compare(min(a.ret.LexRank, a.ret.DenseRank), min(b.ret.LexRank, b.ret.DenseRank)); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	if len(cands) > limit {
		cands = cands[:limit]
	}
	for i := range cands {
		cands[i].ret.Rank = i
	}
	return cands
}

func lexLen(r *lexResult) int {
	if r == nil {
		return 0
	}
	return len(r.Hits)
}

// fuse sets each candidate's retrieval score: the one source's own score,
// or the configured fusion of both.
func (e *Engine) fuse(cands []candidate, mode string, lex *lexResult, dense []index.Hit) {
	rc := e.cfg.Retrieval
	switch {
	case mode == ModeDense || lex == nil:
		for i := range cands {
			cands[i].ret.Score = cands[i].ret.DenseScore
		}
		return
	case mode == ModeLexical:
		for i := range cands {
			cands[i].ret.Score = cands[i].ret.LexScore
		}
		return
	}
	wl, wd := rc.LexicalWeight, rc.DenseWeight
	if rc.Fusion == FusionRRF {
		// Scaled by the best possible sum, so 1 means first in both lists
		// and the score lives on the scale of a cosine, as the linear
		// ranker's weights expect.
		best := (wl + wd) / (rc.RRFK + 1)
		for i := range cands {
			c := &cands[i]
			var s float64
			if c.inLexical {
				s += wl / (rc.RRFK + float64(c.ret.LexRank) + 1)
			}
			if c.inDense {
				s += wd / (rc.RRFK + float64(c.ret.DenseRank) + 1)
			}
			c.ret.Score = float32(s / best)
		}
		return
	}
	lmin, lmax := span(len(lex.Hits), func(i int) float32 { return lex.Hits[i].Score })
	dmin, dmax := span(len(dense), func(i int) float32 { return dense[i].Score })
	for i := range cands {
		c := &cands[i]
		s := wl*unit(c.ret.LexScore, lmin, lmax) + wd*unit(c.ret.DenseScore, dmin, dmax)
		c.ret.Score = float32(s / (wl + wd))
	}
}

// span is the least and greatest of n scores.
func span(n int, at func(int) float32) (lo, hi float32) {
	for i := range n {
		s := at(i)
		if i == 0 || s < lo {
			lo = s
		}
		if i == 0 || s > hi {
			hi = s
		}
	}
	return lo, hi
}

// unit maps s from [lo, hi] onto [0, 1], clamped; a list of equal scores
// maps its score to 1.
func unit(s, lo, hi float32) float64 {
	switch {
	case hi <= lo:
		if s >= hi && hi != 0 {
			return 1
		}
		return 0
	case s <= lo:
		return 0
	case s >= hi:
		return 1
	}
	return float64(s-lo) / float64(hi-lo)
}
