package engine

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/viterin/vek/vek32"

	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/rank"
)

var retrievalFeatures = []string{"retrieval_score", "retrieval_rank", "lexical_score", "lexical_rank", "dense_score",
	"dense_rank", "found_by_both", "title_term_share", "lexical_score_ratio", "dense_score_gap", "query_words", "log_popularity"}

// hybridEngine serves the test items with the retrieval features declared
// and a scorer that ranks by retrieval score alone.
func hybridEngine(t *testing.T, deps Deps) (*Engine, *Generation) {
	t.Helper()
	items := testItems()
	if deps.Features == nil {
		deps.Features = storeFor(items)
	}
	e := newEngine(t, deps)
	w := make([]float32, len(retrievalFeatures))
	w[0] = 1
	g, _ := newGen(t, "v1", items, &fakeScorer{weights: w})
	withFeatures(t, g, retrievalFeatures...)
	e.publish(g)
	return e, g
}

func feature(res Result, h Hit, name string) float32 {
	return h.Features[slices.Index(res.FeatureNames, name)]
}

func TestEngine_SearchModes(t *testing.T) {
	e, g := hybridEngine(t, Deps{Rules: compileRules(t)})
	ctx := context.Background()
	search := func(q, mode string) Result {
		t.Helper()
		res, err := e.Search(ctx, SearchRequest{Query: q, K: 10, Retrieval: mode, Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	t.Run("lexical returns only items holding a query word", func(t *testing.T) {
		res := search("jazz", ModeLexical)
		if res.Retrieval != ModeLexical {
			t.Errorf("retrieval %q", res.Retrieval)
		}
		got := ids(res)
		slices.Sort(got)
		if !slices.Equal(got, []string{"j1", "j2"}) {
			t.Errorf("lexical hits %v, want the jazz items", got)
		}
	})
	t.Run("dense and hybrid fill the features of every candidate", func(t *testing.T) {
		for _, mode := range []string{ModeDense, ModeHybrid} {
			res := search("jazz guitar", mode)
			if res.Retrieval != mode || len(res.Items) == 0 {
				t.Fatalf("%s: retrieval %q, %d items", mode, res.Retrieval, len(res.Items))
			}
			q := wordVector("jazz guitar")
			for _, h := range res.Items {
				it := &g.items[g.byID[h.ID]]
				cos := vek32.Dot(q, g.index.Vector(g.byID[h.ID]))
				if d := feature(res, h, "dense_score"); math.Abs(float64(d-cos)) > 1e-5 {
					t.Errorf("%s %s: dense_score %v, cosine %v", mode, h.ID, d, cos)
				}
				hasWord := strings.Contains(it.Text(), "jazz") || strings.Contains(it.Text(), "guitar")
				lex := feature(res, h, "lexical_score")
				if mode == ModeHybrid && hasWord != (lex > 0) {
					t.Errorf("hybrid %s: lexical_score %v, text %q", h.ID, lex, it.Text())
				}
				if mode == ModeDense && (lex != 0 || feature(res, h, "lexical_rank") != float32(e.cfg.Retrieval.LexicalDepth)) {
					t.Errorf("dense %s: lexical features %v/%v, want the not-found values", h.ID, lex, feature(res, h, "lexical_rank"))
				}
				both := h.Sources.Lexical != nil && h.Sources.Dense != nil
				if (feature(res, h, "found_by_both") == 1) != both {
					t.Errorf("%s %s: found_by_both %v, sources %+v", mode, h.ID, feature(res, h, "found_by_both"), h.Sources)
				}
				if h.Sources.Dense == nil && feature(res, h, "dense_rank") != float32(e.cfg.Retrieval.DenseDepth) {
					t.Errorf("%s %s: not in the dense list but dense_rank %v", mode, h.ID, feature(res, h, "dense_rank"))
				}
				if h.Sources.Lexical != nil && feature(res, h, "lexical_rank") != float32(h.Sources.Lexical.Rank-1) {
					t.Errorf("%s %s: lexical_rank %v, explained rank %d", mode, h.ID, feature(res, h, "lexical_rank"), h.Sources.Lexical.Rank)
				}
			}
		}
	})
	t.Run("relative scores and query words", func(t *testing.T) {
		res := search("jazz guitar", ModeHybrid)
		var bestLex, bestDense float32
		for _, h := range res.Items {
			bestLex, bestDense = max(bestLex, feature(res, h, "lexical_score")), max(bestDense, feature(res, h, "dense_score"))
		}
		for _, h := range res.Items {
			if r, want := feature(res, h, "lexical_score_ratio"), feature(res, h, "lexical_score")/bestLex; math.Abs(float64(r-want)) > 1e-6 {
				t.Errorf("%s: lexical_score_ratio %v, want %v", h.ID, r, want)
			}
			if g, want := feature(res, h, "dense_score_gap"), bestDense-feature(res, h, "dense_score"); math.Abs(float64(g-want)) > 1e-6 {
				t.Errorf("%s: dense_score_gap %v, want %v", h.ID, g, want)
			}
			if w := feature(res, h, "query_words"); w != 2 {
				t.Errorf("%s: query_words %v, want 2", h.ID, w)
			}
		}
	})
	t.Run("title term share", func(t *testing.T) {
		res := search("smooth jazz album", ModeLexical)
		for _, h := range res.Items {
			want := map[string]float32{"j1": 1, "j2": 2.0 / 3, "m1": 1.0 / 3, "m2": 1.0 / 3}[h.ID]
			if got := feature(res, h, "title_term_share"); math.Abs(float64(got-want)) > 1e-6 {
				t.Errorf("%s: title_term_share %v, want %v", h.ID, got, want)
			}
		}
	})
	t.Run("an exact item id comes first in every mode", func(t *testing.T) {
		for _, mode := range []string{ModeHybrid, ModeLexical, ModeDense} {
			res := search("t3", mode)
			if len(res.Items) == 0 || res.Items[0].ID != "t3" || !res.Items[0].Sources.ExactID {
				t.Errorf("%s: %v, want t3 first and marked", mode, ids(res))
			}
		}
	})
	t.Run("an exact id the filters refuse is not served", func(t *testing.T) {
		res, err := e.Search(ctx, SearchRequest{Query: "t2", K: 10, Retrieval: ModeLexical}) // t2 is unavailable
		if err != nil {
			t.Fatal(err)
		}
		if has(ids(res), "t2") {
			t.Errorf("unavailable t2 served: %v", ids(res))
		}
	})
	t.Run("filters apply inside lexical retrieval", func(t *testing.T) {
		res, err := e.Search(ctx, SearchRequest{Query: "guitar album", K: 10, Retrieval: ModeLexical,
			Filters: Filters{Brands: []string{"Blue"}}, User: User{Age: 5}})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(res); !slices.Equal(got, []string{"j1", "j2"}) && !slices.Equal(got, []string{"j2", "j1"}) {
			t.Errorf("filtered lexical hits %v, want j1 and j2", got)
		}
	})
}

func TestEngine_SearchInput(t *testing.T) {
	e, _ := hybridEngine(t, Deps{})
	for _, tc := range []struct {
		req   SearchRequest
		field string
	}{
		{SearchRequest{Query: "jazz", K: 3, Retrieval: "bm25"}, "retrieval"},
		{SearchRequest{Query: "the and of", K: 3, Retrieval: ModeLexical}, "query"},
	} {
		_, err := e.Search(context.Background(), tc.req)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("%+v: err %v, want an input error on %s", tc.req, err, tc.field)
		}
	}
}

func TestEngine_BundleWithoutLexical(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, g := hybridEngine(t, Deps{Registerer: reg})
	g.lexical = nil // a bundle built before the lexical index
	res, err := e.Search(context.Background(), SearchRequest{Query: "jazz", K: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Degraded, "lexical") || len(res.Items) == 0 || res.Retrieval != ModeHybrid {
		t.Errorf("degraded %v, %d items, retrieval %q: want dense results flagged lexical", res.Degraded, len(res.Items), res.Retrieval)
	}
	if got := testutil.ToFloat64(e.m.degraded.WithLabelValues("lexical")); got != 1 {
		t.Errorf("recsys_engine_degraded_total{stage=lexical} = %v, want 1", got)
	}
}

func TestEngine_Fuse(t *testing.T) {
	e := newEngine(t, Deps{Features: &fakeStore{}})
	mk := func(lexRank, denseRank int, lex, dense float32) candidate {
		c := candidate{ret: rank.Retrieval{LexRank: lexRank, DenseRank: denseRank, LexScore: lex, DenseScore: dense}}
		c.inLexical, c.inDense = lexRank < 200, denseRank < 200
		return c
	}
	lexHits := &lexResult{Hits: []index.LexicalHit{{ID: 0, Score: 10}, {ID: 1, Score: 5}}}
	dense := []index.Hit{{ID: 2, Score: 0.9}, {ID: 0, Score: 0.5}}
	t.Run("rrf", func(t *testing.T) {
		cands := []candidate{mk(0, 1, 10, 0.5), mk(1, 200, 5, 0.1), mk(200, 0, 0, 0.9)}
		e.fuse(cands, ModeHybrid, lexHits, dense)
		best := 2.0 / 61
		want := []float64{(1.0/61 + 1.0/62) / best, (1.0 / 62) / best, (1.0 / 61) / best}
		for i, c := range cands {
			if math.Abs(float64(c.ret.Score)-want[i]) > 1e-6 {
				t.Errorf("candidate %d: rrf %v, want %v", i, c.ret.Score, want[i])
			}
		}
	})
	t.Run("weighted", func(t *testing.T) {
		e.cfg.Retrieval.Fusion, e.cfg.Retrieval.DenseWeight = FusionWeighted, 3
		defer func() { e.cfg.Retrieval = DefaultRetrievalConfig() }()
		cands := []candidate{mk(0, 1, 10, 0.5), mk(1, 200, 5, 0.1), mk(200, 0, 0, 0.9)}
		e.fuse(cands, ModeHybrid, lexHits, dense)
		// lexical spans 5..10, dense 0.5..0.9; below a list's least score is 0.
		want := []float64{(1*1 + 3*0) / 4.0, (1*0 + 3*0) / 4.0, (1*0 + 3*1) / 4.0}
		for i, c := range cands {
			if math.Abs(float64(c.ret.Score)-want[i]) > 1e-6 {
				t.Errorf("candidate %d: weighted %v, want %v", i, c.ret.Score, want[i])
			}
		}
	})
	t.Run("one source keeps its own score", func(t *testing.T) {
		cands := []candidate{mk(0, 1, 10, 0.5)}
		e.fuse(cands, ModeLexical, lexHits, nil)
		if cands[0].ret.Score != 10 {
			t.Errorf("lexical mode score %v, want the BM25 score 10", cands[0].ret.Score)
		}
	})
}

func TestRetrievalConfig_Validate(t *testing.T) {
	if err := DefaultRetrievalConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := RetrievalConfig{Mode: "sparse", Fusion: "max", RRFK: -1, LexicalDepth: 0, DenseDepth: 20000, LexicalWeight: 0, DenseWeight: 0}
	err := bad.Validate()
	for _, want := range []string{"mode:", "fusion:", "rrf_k:", "lexical_depth:", "dense_depth:", "at least one must be > 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, missing %q", err, want)
		}
	}
}
