package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/rules"
)

const testDim = 16

var errClosed = errors.New("used after close")

// fakeEncoder embeds a text as a bag of hashed words, so texts sharing
// words are close; it fails if used after Close.
type fakeEncoder struct {
	feat   *embed.Featurizer
	closed atomic.Bool
}

func (f *fakeEncoder) Encode(_ context.Context, texts []string) ([][]float32, error) {
	if f.closed.Load() {
		return nil, errClosed
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = wordVector(t)
	}
	return out, nil
}
func (f *fakeEncoder) Featurizer() *embed.Featurizer { return f.feat }
func (f *fakeEncoder) Close() error                  { f.closed.Store(true); return nil }

func wordVector(text string) []float32 {
	v := make([]float32, testDim)
	for _, w := range splitWords(embed.Normalize(text)) {
		h := fnv.New32a()
		h.Write([]byte(w))
		v[h.Sum32()%testDim]++
	}
	var n float64
	for _, x := range v {
		n += float64(x * x)
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(n))
	}
	return v
}

func splitWords(s string) []string {
	var out []string
	start := -1
	for i, r := range s + " " {
		if r == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
			}
			start = -1
		} else if start < 0 {
			start = i
		}
	}
	return out
}

// fakeScorer scores with fixed weights; err makes it fail.
type fakeScorer struct {
	weights []float32
	err     error
	closed  atomic.Bool
	// noExplain, when set, is what Explain answers (a model without its
	// Go form).
	noExplain error
}

func (f *fakeScorer) Score(_ context.Context, x []float32, n int) ([]float32, error) {
	if f.closed.Load() {
		return nil, errClosed
	}
	if f.err != nil {
		return nil, f.err
	}
	out := make([]float32, n)
	w := len(f.weights)
	for i := range out {
		for j, wt := range f.weights {
			out[i] += wt * x[i*w+j]
		}
	}
	return out, nil
}
func (f *fakeScorer) Close() error { f.closed.Store(true); return nil }

// Explain is weight times value, as rank's linear model explains itself.
func (f *fakeScorer) Explain(row []float32) (string, float32, []float32, error) {
	if f.noExplain != nil {
		return "", 0, nil, f.noExplain
	}
	phi := make([]float32, len(row))
	for i, w := range f.weights {
		phi[i] = w * row[i]
	}
	return "linear", 0, phi, nil
}

// fakeStore serves log_popularity rows from the items; err makes it fail.
type fakeStore struct {
	rows map[string][]float32
	err  error
}

func (s *fakeStore) Fetch(_ context.Context, _ string, ids []string, dst, defaults []float32) (int, error) {
	f := len(defaults)
	missing := 0
	for i, id := range ids {
		r, ok := s.rows[id]
		if !ok || s.err != nil {
			copy(dst[i*f:], defaults)
			missing++
			continue
		}
		copy(dst[i*f:], r)
	}
	return missing, s.err
}

type sink struct {
	mu     sync.Mutex
	events []feedback.Event
}

func (s *sink) PublishAsync(ev feedback.Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

func testItems() []catalog.Item {
	mk := func(id, title, brand, cat string, pop float64, avail bool, age int) catalog.Item {
		return catalog.Item{ID: id, Title: title, Brand: brand, Category: cat, Popularity: pop,
			Available: avail, AgeRating: age, Price: 10, CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	return []catalog.Item{
		mk("m1", "loud metal guitar album", "Riff", "heavy-metal", 5, true, 0),
		mk("m2", "metal guitar live album", "Riff", "heavy-metal", 4, true, 0),
		mk("j1", "smooth jazz guitar album", "Blue", "jazz", 3, true, 0),
		mk("j2", "jazz piano album", "Blue", "jazz", 9, true, 0),
		mk("t1", "wooden toy guitar", "Kindred", "toys", 8, true, 0),
		mk("t2", "wooden toy train", "Kindred", "toys", 7, false, 0),
		mk("t3", "plush toy bear", "Softy", "toys", 6, true, 0),
		mk("w1", "red wine bottle", "Verre", "wine", 2, true, 18),
	}
}

// pricedItems is testItems with prices from 4 to 25, for price filters.
func pricedItems() []catalog.Item {
	items := testItems()
	for i := range items {
		items[i].Price = float64(4 + 3*i)
	}
	return items
}

// newGen builds a generation over items (exact index) with fakes in place
// of the models.
func newGen(t testing.TB, version string, items []catalog.Item, scorer *fakeScorer) (*Generation, *fakeEncoder) {
	t.Helper()
	return newGenOn(t, index.Config{Backend: index.BackendExact}, version, items, scorer)
}

// newGenOn is newGen over the index backend icfg selects.
func newGenOn(t testing.TB, icfg index.Config, version string, items []catalog.Item, scorer *fakeScorer) (*Generation, *fakeEncoder) {
	t.Helper()
	feat, err := embed.NewFeaturizer(embed.DefaultFeaturizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	vecs := make([]float32, 0, len(items)*testDim)
	for i := range items {
		vecs = append(vecs, wordVector(items[i].Text())...)
	}
	ix, err := index.Build(context.Background(), icfg, testDim, vecs)
	if err != nil {
		t.Fatal(err)
	}
	m := &bundle.Manifest{Version: version, Items: len(items), Dim: testDim,
		FeatureNames: []string{"retrieval_score", "log_popularity"}, FeatureDefaults: []float32{0, 0},
		ItemFeatureNames: []string{"log_popularity"}}
	lex, err := index.BuildLexical(context.Background(), index.DefaultLexicalConfig(), len(items),
		func(d, f int) string { return index.ItemField(&items[d], f) })
	if err != nil {
		t.Fatal(err)
	}
	enc := &fakeEncoder{feat: feat}
	g := &Generation{Manifest: m, items: items, byID: map[string]int32{}, index: ix, lexical: lex,
		encoder: enc, scorer: scorer, drained: make(chan struct{})}
	for i := range items {
		g.byID[items[i].ID] = int32(i)
		g.popular = append(g.popular, int32(i))
	}
	// popular order by descending popularity
	for a := range g.popular {
		for b := a + 1; b < len(g.popular); b++ {
			if items[g.popular[b]].Popularity > items[g.popular[a]].Popularity {
				g.popular[a], g.popular[b] = g.popular[b], g.popular[a]
			}
		}
	}
	if g.layout, g.itemDefaults, err = layoutOf(m); err != nil {
		t.Fatal(err)
	}
	return g, enc
}

func storeFor(items []catalog.Item) *fakeStore {
	s := &fakeStore{rows: map[string][]float32{}}
	for _, it := range items {
		s.rows[it.ID] = []float32{float32(math.Log1p(it.Popularity))}
	}
	return s
}

func compileRules(t testing.TB) *rules.Set {
	t.Helper()
	set, err := rules.Compile(rules.Config{Filters: []rules.FilterRule{
		{Name: "available", Expr: "item.available"},
		{Name: "age-rating", Expr: "user.age == 0 || item.age_rating <= user.age"},
		{Name: "no-heavy-metal-for-young-children", Expr: `!(user.age > 0 && user.age < 7 && item.category == "heavy-metal")`},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func newEngine(t testing.TB, deps Deps) *Engine {
	t.Helper()
	e, err := New(Config{Candidates: 50, RankTimeout: time.Second, RecentDecay: 0.8, MaxRecent: 20, QueryCacheSize: 100}, deps)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func ids(res Result) []string {
	var out []string
	for _, h := range res.Items {
		out = append(out, h.ID)
	}
	return out
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestEngine_Search(t *testing.T) {
	items := testItems()
	cases := []struct {
		name     string
		req      SearchRequest
		wantTop  string
		mustNot  []string
		wantLen  int
		wantErrF string
	}{
		{"text match first", SearchRequest{Query: "metal guitar album", K: 3}, "", nil, 3, ""},
		{"child gets no heavy metal", SearchRequest{Query: "metal guitar album", K: 10, User: User{Age: 5}}, "", []string{"m1", "m2", "w1"}, 4, ""},
		{"age rating", SearchRequest{Query: "red wine", K: 10, User: User{Age: 16}}, "", []string{"w1"}, 6, ""},
		{"unavailable never served", SearchRequest{Query: "wooden toy train", K: 10}, "t1", []string{"t2"}, 7, ""},
		{"brand filter", SearchRequest{Query: "guitar", K: 10, Filters: Filters{Brands: []string{"Blue"}}}, "j1", []string{"m1", "t1"}, 2, ""},
		{"empty query", SearchRequest{Query: "  ", K: 3}, "", nil, 0, "query"},
		{"no searchable terms", SearchRequest{Query: "!!! ???", K: 3}, "", nil, 0, "query"},
		{"bad k", SearchRequest{Query: "toy", K: 0}, "", nil, 0, "k"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Deps{Features: storeFor(items), Rules: compileRules(t)})
			g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{1, 0}})
			e.publish(g)
			res, err := e.Search(context.Background(), tc.req)
			if tc.wantErrF != "" {
				var ie *InputError
				if !errors.As(err, &ie) || ie.Field != tc.wantErrF {
					t.Fatalf("err = %v, want an input error on %s", err, tc.wantErrF)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ids(res)
			if len(got) != tc.wantLen {
				t.Fatalf("got %d items %v, want %d", len(got), got, tc.wantLen)
			}
			if tc.wantTop != "" && got[0] != tc.wantTop {
				t.Errorf("top = %s, want %s (%v)", got[0], tc.wantTop, got)
			}
			for _, id := range tc.mustNot {
				if has(got, id) {
					t.Errorf("%s served: %v", id, got)
				}
			}
		})
	}
}

func TestEngine_Degraded(t *testing.T) {
	items := testItems()
	t.Run("feature store down", func(t *testing.T) {
		store := storeFor(items)
		store.err = errors.New("connection refused")
		e := newEngine(t, Deps{Features: store})
		g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{1, 1}})
		e.publish(g)
		res, err := e.Search(context.Background(), SearchRequest{Query: "toy", K: 4, Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 4 || !has(res.Degraded, "features") {
			t.Fatalf("items %d degraded %v", len(res.Items), res.Degraded)
		}
		for _, h := range res.Items {
			if h.Features[1] != 0 { // the log_popularity default
				t.Fatalf("features %v, want the default for log_popularity", h.Features)
			}
		}
	})
	t.Run("ranker fails", func(t *testing.T) {
		e := newEngine(t, Deps{Features: storeFor(items)})
		g, _ := newGen(t, "v1", items, &fakeScorer{err: errors.New("onnx: boom")})
		e.publish(g)
		res, err := e.Search(context.Background(), SearchRequest{Query: "wooden toy", K: 5})
		if err != nil {
			t.Fatal(err)
		}
		if !has(res.Degraded, "ranking") {
			t.Fatalf("degraded = %v", res.Degraded)
		}
		for i, h := range res.Items {
			if h.RetrievalRank != i+1 {
				t.Fatalf("position %d has retrieval rank %d: not retrieval order", i, h.RetrievalRank)
			}
		}
	})
}

func TestEngine_Recommend(t *testing.T) {
	items := testItems()
	setup := func(t *testing.T) *Engine {
		e := newEngine(t, Deps{Features: storeFor(items), Rules: compileRules(t)})
		// Ranked by popularity only, so the cold-start order is checkable.
		g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{0, 1}})
		e.publish(g)
		return e
	}
	t.Run("recent items excluded", func(t *testing.T) {
		res, err := setup(t).Recommend(context.Background(), RecommendRequest{RecentItems: []string{"m1", "gone", "j1"}, K: 3})
		if err != nil {
			t.Fatal(err)
		}
		got := ids(res)
		if len(got) != 3 || has(got, "m1") || has(got, "j1") {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("seed item", func(t *testing.T) {
		res, err := setup(t).Recommend(context.Background(), RecommendRequest{SeedItem: "t1", K: 2})
		if err != nil || len(res.Items) != 2 || has(ids(res), "t1") {
			t.Fatalf("got %v, %v", ids(res), err)
		}
	})
	t.Run("cold start is popular first", func(t *testing.T) {
		res, err := setup(t).Recommend(context.Background(), RecommendRequest{User: User{ID: "new"}, K: 3})
		if err != nil {
			t.Fatal(err)
		}
		// By popularity: j2 9, t1 8, t2 7 (unavailable, filtered), t3 6.
		if got := ids(res); fmt.Sprint(got) != "[j2 t1 t3]" {
			t.Fatalf("got %v, want [j2 t1 t3]", got)
		}
	})
	for _, tc := range []struct {
		name  string
		req   RecommendRequest
		field string
		nf    bool
	}{
		{"unknown seed", RecommendRequest{SeedItem: "nope", K: 3}, "seed_item", true},
		{"no known recent items", RecommendRequest{RecentItems: []string{"x", "y"}, K: 3}, "recent_items", true},
		{"nothing to go on", RecommendRequest{K: 3}, "recent_items", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := setup(t).Recommend(context.Background(), tc.req)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != tc.field || ie.NotFound() != tc.nf {
				t.Fatalf("err = %#v, want field %s notFound %v", err, tc.field, tc.nf)
			}
		})
	}
}

func TestEngine_Impression(t *testing.T) {
	items := testItems()
	s := &sink{}
	e := newEngine(t, Deps{Features: storeFor(items), Impressions: s})
	g, _ := newGen(t, "v7", items, &fakeScorer{weights: []float32{1, 0.1}})
	e.publish(g)
	res, err := e.Search(context.Background(), SearchRequest{RequestID: "r1", Query: "jazz", K: 3, User: User{ID: "u1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.events) != 1 {
		t.Fatalf("%d impression events", len(s.events))
	}
	ev := s.events[0]
	if err := ev.Validate(time.Now()); err != nil {
		t.Fatalf("impression invalid: %v", err)
	}
	if ev.RequestID != "r1" || ev.UserID != "u1" || ev.Bundle != "v7" || len(ev.Items) != len(res.Items) {
		t.Fatalf("impression %+v", ev)
	}
	for i, it := range ev.Items {
		if it.ItemID != res.Items[i].ID || it.Position != i || len(it.Features) != 2 || it.Score != res.Items[i].Score {
			t.Fatalf("impression item %d = %+v, served %+v", i, it, res.Items[i])
		}
	}
}

// Searches running while generations are swapped never see a closed model,
// and every swapped-out generation is closed once its requests drain.
func TestEngine_SwapUnderLoad(t *testing.T) {
	items := testItems()
	e := newEngine(t, Deps{Features: storeFor(items)})
	var encs []*fakeEncoder
	g, enc := newGen(t, "v0", items, &fakeScorer{weights: []float32{1, 0}})
	encs = append(encs, enc)
	e.publish(g)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var served atomic.Int64
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				res, err := e.Search(context.Background(), SearchRequest{Query: "guitar album", K: 3})
				if err == nil && len(res.Items) != 3 {
					err = fmt.Errorf("bundle %s returned %d items", res.Bundle, len(res.Items))
				}
				if err != nil {
					errs <- err
					return
				}
				served.Add(1)
			}
		}()
	}
	// Generations alternate between the HNSW and the exact index, as a
	// backend change between two bundles would.
	backends := []index.Config{index.DefaultConfig(), {Backend: index.BackendExact}}
	for v := 1; v <= 20; v++ {
		g, enc := newGenOn(t, backends[v%2], fmt.Sprintf("v%d", v), items, &fakeScorer{weights: []float32{1, 0}})
		encs = append(encs, enc)
		e.publish(g)
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if served.Load() == 0 {
		t.Fatal("no search completed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, enc := range encs[:len(encs)-1] {
		for !enc.closed.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("generation v%d never closed after being swapped out", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if encs[len(encs)-1].closed.Load() {
		t.Fatal("the live generation was closed")
	}
}

// TestEngine_RankerExplainable: the gauge says whether the live ranker can
// explain its scores, and an explained hit says why it cannot.
func TestEngine_RankerExplainable(t *testing.T) {
	items := testItems()
	e := newEngine(t, Deps{Features: storeFor(items)})
	g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{1, 0.1}})
	e.publish(g)
	if v := testutil.ToFloat64(e.m.explainable); v != 1 {
		t.Fatalf("explainable = %v with a ranker that explains", v)
	}
	g2, _ := newGen(t, "v2", items, &fakeScorer{weights: []float32{1, 0.1}, noExplain: errors.New("no recsys.explain metadata")})
	e.publish(g2)
	if v := testutil.ToFloat64(e.m.explainable); v != 0 {
		t.Fatalf("explainable = %v with a ranker that cannot explain", v)
	}
	res, err := e.Search(context.Background(), SearchRequest{Query: "jazz", K: 2, Explain: true})
	if err != nil || len(res.Items) == 0 {
		t.Fatal(res, err)
	}
	if c := res.Items[0].Contributions; c == nil || c.Unavailable != "no recsys.explain metadata" || c.Values != nil {
		t.Fatalf("contributions %+v, want the reason and no values", c)
	}
}
