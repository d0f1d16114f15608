package index

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
)

// refDeltaBM25F scores the delta documents by the definition of a delta:
// the base's idf (a term it lacks held by one document), lengths
// normalised by the base's average. It is the oracle for Delta, as refBM25F is for BuildLexical.
func refDeltaBM25F(an *Analyzer, p LexicalParams, base, delta [][NumFields]string, query string) []float64 {
	type doc struct {
		tf map[string]float64
		dl float64
	}
	analyse := func(d [NumFields]string) doc {
		o := doc{tf: map[string]float64{}}
		for f := range NumFields {
			an.Analyze(d[f], func(term string, counted bool) {
				o.tf[term] += p.Weights[f]
				if counted {
					o.dl += p.Weights[f]
				}
			})
		}
		return o
	}
	df := map[string]int{}
	var baseLen float64
	for _, d := range base {
		o := analyse(d)
		baseLen += o.dl
		for term := range o.tf {
			df[term]++
		}
	}
	docs := make([]doc, len(delta))
	inDelta := map[string]bool{}
	for i, d := range delta {
		docs[i] = analyse(d)
		for term := range docs[i].tf {
			inDelta[term] = true
		}
	}
	for term := range inDelta {
		df[term] = max(df[term], 1)
	}
	n := float64(len(base))
	avg := baseLen / float64(len(base))
	scores := make([]float64, len(delta))
	an.AnalyzeQuery(query, func(term string, _ bool) {
		if df[term] == 0 {
			return
		}
		idf := math.Log(1 + (n-float64(df[term])+0.5)/(float64(df[term])+0.5))
		for i, o := range docs {
			if t := o.tf[term]; t > 0 {
				scores[i] += idf * (p.K1 + 1) * t / (t + p.K1*(1-p.B+p.B*o.dl/avg))
			}
		}
	})
	return scores
}

func buildDelta(t testing.TB, x *Lexical, docs [][NumFields]string) *Lexical {
	t.Helper()
	y, err := x.Delta(context.Background(), len(docs), func(d, f int) string { return docs[d][f] })
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// deltaDocs are lexCorpus documents plus one whose words the base lacks.
func deltaDocs(seed uint64, n int) [][NumFields]string {
	docs := lexCorpus(seed, n)
	docs[n/2] = [NumFields]string{FieldTitle: "zanzibar spice", FieldDescription: "zanzibar cloves and red wine"}
	return docs
}

var deltaQueries = []string{"red wine", "merlot oak barrel", "wireless noise headphones", "usb-c cable", "WH-1000XM5",
	"wooden toy train train", "jazz", "zanzibar", "zanzibar red", "unknownword"}

func TestLexical_DeltaMatchesDefinition(t *testing.T) {
	base, delta := lexCorpus(1, 400), deltaDocs(2, 30)
	other := LexicalParams{K1: 1.2, B: 0.75, Weights: [NumFields]float64{1, 1, 1, 1, 1}}
	for _, cfg := range []LexicalConfig{
		DefaultLexicalConfig(),
		{AnalyzerConfig: AnalyzerConfig{Stopwords: StopNone, Stemmer: StemNone}, K1: 0.5, B: 0, Fields: FieldWeights{Title: 3, Description: 0.5}},
	} {
		x := buildLex(t, cfg, base)
		y := buildDelta(t, x, delta)
		if y.Len() != len(delta) || y.Params() != x.Params() || y.Analyzer() != x.Analyzer() {
			t.Fatalf("delta has %d docs, params %+v, want %d, %+v and the base's analyzer", y.Len(), y.Params(), len(delta), x.Params())
		}
		check := func(name string, p LexicalParams) {
			for _, q := range deltaQueries {
				want := refDeltaBM25F(x.Analyzer(), p, base, delta, q)
				r := y.Search(y.Parse(q), 10, nil)
				for d := range delta {
					if got := float64(r.Score(int32(d))); math.Abs(got-want[d]) > 1e-4*math.Max(1, want[d]) {
						t.Fatalf("%s %q: delta doc %d scores %v, definition %v", name, q, d, got, want[d])
					}
				}
				r.Release()
			}
		}
		check(fmt.Sprintf("built %+v", cfg.Params()), cfg.Params())
		// Re-tuned, a delta still normalises by the base's average length,
		// now under the new weights.
		if err := y.Tune(other); err != nil {
			t.Fatal(err)
		}
		check("re-tuned", other)
	}
}

// TestLexical_DeltaNearRebuild checks what the delta is for: with a delta
// small beside its base, a document scores about what an index rebuilt
// over both gives it.
func TestLexical_DeltaNearRebuild(t *testing.T) {
	base, delta := lexCorpus(3, 2000), deltaDocs(4, 20)
	x := buildLex(t, DefaultLexicalConfig(), base)
	y := buildDelta(t, x, delta)
	full := buildLex(t, DefaultLexicalConfig(), append(slices.Clone(base), delta...))
	const tol = 0.01
	worst := 0.0
	for _, q := range deltaQueries {
		a, b := y.Search(y.Parse(q), 10, nil), full.Search(full.Parse(q), 10, nil)
		matched := 0
		for d := range delta {
			got, want := float64(a.Score(int32(d))), float64(b.Score(int32(len(base)+d)))
			if (got > 0) != (want > 0) {
				t.Fatalf("%q: delta doc %d scores %v, %v rebuilt", q, d, got, want)
			}
			if want == 0 {
				continue
			}
			matched++
			rel := math.Abs(got-want) / want
			worst = max(worst, rel)
			if rel > tol {
				t.Errorf("%q: delta doc %d scores %v, %v rebuilt (%.2g%% off)", q, d, got, want, 100*rel)
			}
		}
		if q != "unknownword" && matched == 0 {
			t.Errorf("%q matches no delta document", q)
		}
		a.Release()
		b.Release()
	}
	t.Logf("largest relative score difference from the rebuild: %.2g", worst)
}

func TestLexical_DeltaNewTerm(t *testing.T) {
	x := buildLex(t, DefaultLexicalConfig(), lexCorpus(5, 300))
	delta := deltaDocs(6, 10)
	y := buildDelta(t, x, delta)
	if !x.Parse("zanzibar").Empty() {
		t.Fatal("the base should not know the word")
	}
	q := y.Parse("zanzibar")
	if q.Empty() {
		t.Fatal("the delta does not know a word only it holds")
	}
	r := y.Search(q, 5, nil)
	defer r.Release()
	if len(r.Hits) != 1 || r.Hits[0].ID != int32(len(delta)/2) {
		t.Fatalf("hits %v, want only delta doc %d", r.Hits, len(delta)/2)
	}
	if s := r.TitleShare(r.Hits[0].ID); s != 1 {
		t.Errorf("TitleShare = %v, want 1", s)
	}
	// df 1 of 311 documents: the idf of a term new to the whole catalog.
	idf := math.Log(1 + (311-1+0.5)/(1+0.5))
	if got := float64(r.Hits[0].Score); got <= idf || got >= idf*(x.Params().K1+1) {
		t.Errorf("score %v outside (idf, idf*(k1+1)) = (%v, %v)", got, idf, idf*(x.Params().K1+1))
	}
}

// lexAnswers is every query's hits and scores, to compare an index with
// itself over time.
func lexAnswers(x *Lexical) [][]LexicalHit {
	var out [][]LexicalHit
	for _, q := range deltaQueries {
		r := x.Search(x.Parse(q), 1000, nil)
		out = append(out, slices.Clone(r.Hits))
		r.Release()
	}
	return out
}

func TestLexical_DeltaLeavesBaseUnchanged(t *testing.T) {
	x := buildLex(t, DefaultLexicalConfig(), lexCorpus(7, 500))
	before, terms, params := lexAnswers(x), x.Terms(), x.Params()
	y := buildDelta(t, x, deltaDocs(8, 40))
	if err := y.Tune(LexicalParams{K1: 2, B: 1, Weights: [NumFields]float64{1}}); err != nil {
		t.Fatal(err)
	}
	after := lexAnswers(x)
	for i := range before {
		if !slices.Equal(before[i], after[i]) {
			t.Errorf("%q: base answers %v after a delta, %v before", deltaQueries[i], after[i], before[i])
		}
	}
	if x.Terms() != terms || x.Params() != params || x.Len() != 500 {
		t.Errorf("base now has %d terms, params %+v, %d docs", x.Terms(), x.Params(), x.Len())
	}
}

func TestLexical_DeltaConcurrentWithSearch(t *testing.T) {
	x := buildLex(t, DefaultLexicalConfig(), lexCorpus(9, 1000))
	want := lexAnswers(x)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got := lexAnswers(x); !slices.EqualFunc(got, want, slices.Equal) {
					errs <- fmt.Errorf("base answered differently while deltas were built")
					return
				}
			}
		}()
	}
	for i := range 20 {
		y := buildDelta(t, x, deltaDocs(uint64(100+i), 5+i))
		r := y.Search(y.Parse("zanzibar"), 1, nil)
		if len(r.Hits) != 1 {
			t.Errorf("delta %d: %d hits for its own word", i, len(r.Hits))
		}
		r.Release()
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLexical_Delta(t *testing.T) {
	x := buildLex(t, DefaultLexicalConfig(), lexCorpus(10, 50))
	text := func(int, int) string { return "red wine" }
	t.Run("empty", func(t *testing.T) {
		y, err := x.Delta(context.Background(), 0, text)
		if err != nil {
			t.Fatal(err)
		}
		r := y.Search(y.Parse("red wine"), 10, nil)
		defer r.Release()
		if y.Len() != 0 || y.Terms() != 0 || len(r.Hits) != 0 {
			t.Fatalf("empty delta: %d docs, %d terms, hits %v", y.Len(), y.Terms(), r.Hits)
		}
	})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	y := buildDelta(t, x, [][NumFields]string{{FieldTitle: "red"}})
	tests := []struct {
		name string
		base *Lexical
		ctx  context.Context
		n    int
	}{
		{"negative count", x, context.Background(), -1},
		{"too many", x, context.Background(), math.MaxInt32},
		{"cancelled", x, cancelled, 10},
		{"delta of a delta", y, context.Background(), 1},
		{"untuned base", newLexBuilder(1).finish(x.Analyzer()), context.Background(), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d, err := tt.base.Delta(tt.ctx, tt.n, text); err == nil {
				t.Fatalf("Delta = %v, want an error", d)
			}
		})
	}
}

func BenchmarkLexical_Delta(b *testing.B) {
	x := buildLex(b, DefaultLexicalConfig(), lexCorpus(11, 20000))
	docs := deltaDocs(12, 200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.Delta(context.Background(), len(docs), func(d, f int) string { return docs[d][f] }); err != nil {
			b.Fatal(err)
		}
	}
}

// A document's delta score depends on its text and the base alone, not on
// the other documents of its delta: replicas that split the same changes
// into different deltas must score them alike.
func TestLexical_DeltaScoreIndependentOfCompanions(t *testing.T) {
	x := buildLex(t, DefaultLexicalConfig(), lexCorpus(7, 500))
	docs := deltaDocs(8, 40)
	all := buildDelta(t, x, docs)
	for _, q := range deltaQueries {
		ra := all.Search(all.Parse(q), 40, nil)
		for d := range docs {
			alone := buildDelta(t, x, docs[d:d+1])
			r := alone.Search(alone.Parse(q), 1, nil)
			if got, want := r.Score(0), ra.Score(int32(d)); got != want {
				t.Errorf("%q: doc %d scores %v alone, %v among %d", q, d, got, want, len(docs))
			}
			r.Release()
		}
		ra.Release()
	}
}
