package engine

import (
	"cmp"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/index/cf"
)

// collabGen is newGen over testItems with planted collaborative sources:
// co-engagement links the metal albums to the jazz piano album (j2) and
// the wine (w1), which content similarity would never find, and the
// factors make the plush bear (t3) the favourite of anyone who liked the
// smooth jazz album (j1).
func collabGen(t *testing.T) *Generation {
	t.Helper()
	items := testItems()
	g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{1, 0}})
	num := func(id string) int32 { return g.byID[id] }
	// m1 -> j2 (0.9), w1 (0.5); m2 -> j2 (0.4); others none.
	offsets := make([]int32, len(items)+1)
	var nids []int32
	var sims []float32
	for i := range items {
		switch items[i].ID {
		case "m1":
			nids, sims = append(nids, num("j2"), num("w1")), append(sims, 0.9, 0.5)
		case "m2":
			nids, sims = append(nids, num("j2")), append(sims, 0.4)
		}
		offsets[i+1] = int32(len(nids))
	}
	nb, err := cf.NewNeighbours(len(items), offsets, nids, sims)
	if err != nil {
		t.Fatal(err)
	}
	// Two factors: j1 and t3 share the first, everything else the second.
	const dim = 2
	y := make([]float32, len(items)*dim)
	for i := range items {
		if id := items[i].ID; id == "j1" || id == "t3" {
			y[i*dim] = 1
			if id == "t3" {
				y[i*dim] = 1.5
			}
		} else {
			y[i*dim+1] = 0.3
		}
	}
	f, err := cf.NewFactors(len(items), dim, y, 0.1, 10)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := index.Build(context.Background(), index.Config{Backend: index.BackendExact}, dim+1, f.MIPSVectors())
	if err != nil {
		t.Fatal(err)
	}
	g.cooc, g.als, g.alsIndex = nb, f, ix
	return g
}

func TestRecommend_Sources(t *testing.T) {
	setup := func(t *testing.T) *Engine {
		e := newEngine(t, Deps{Features: storeFor(testItems()), Rules: compileRules(t)})
		e.publish(collabGen(t))
		return e
	}
	ctx := context.Background()
	t.Run("co-engagement alone, in its order", func(t *testing.T) {
		res, err := setup(t).Recommend(ctx, RecommendRequest{RecentItems: []string{"m1"}, K: 5, Sources: []string{SourceCooc}, Order: OrderRetrieval, Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(res); !slices.Equal(got, []string{"j2", "w1"}) {
			t.Fatalf("got %v, want [j2 w1] (the planted neighbours, best first)", got)
		}
		// Scores are shares of the request's best: 0.9 and 0.5 of 0.9.
		s, s2 := res.Items[0].Sources, res.Items[1].Sources
		if s == nil || !slices.Equal(s.Names, []string{SourceCooc}) || s.Cooc == nil || s.Cooc.Rank != 1 || s.Cooc.Score != 1 ||
			s2.Cooc == nil || s2.Cooc.Rank != 2 || math.Abs(float64(s2.Cooc.Score)-0.5/0.9) > 1e-6 {
			t.Fatalf("explained sources %+v, %+v", s, s2)
		}
	})
	t.Run("filters apply to every source", func(t *testing.T) {
		// The wine is for adults: a ten-year-old never gets it, from
		// co-engagement or anywhere.
		res, err := setup(t).Recommend(ctx, RecommendRequest{User: User{Age: 10}, RecentItems: []string{"m1"}, K: 8})
		if err != nil {
			t.Fatal(err)
		}
		if has(ids(res), "w1") || has(ids(res), "m1") {
			t.Fatalf("got %v: the adult item or the history came back", ids(res))
		}
	})
	t.Run("factorisation folds the history in", func(t *testing.T) {
		res, err := setup(t).Recommend(ctx, RecommendRequest{RecentItems: []string{"j1"}, K: 1, Sources: []string{SourceALS}, Order: OrderRetrieval, Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(res); !slices.Equal(got, []string{"t3"}) {
			t.Fatalf("got %v, want [t3] (the item sharing j1's factor)", got)
		}
		if s := res.Items[0].Sources; s.ALS == nil || s.ALS.Rank != 1 || !(s.ALSScore > 0) {
			t.Fatalf("explained sources %+v", s)
		}
	})
	t.Run("merged: every source's candidates with their features", func(t *testing.T) {
		res, err := setup(t).Recommend(ctx, RecommendRequest{RecentItems: []string{"m1", "j1"}, K: 8, Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		names := map[string][]string{}
		for _, h := range res.Items {
			names[h.ID] = h.Sources.Names
		}
		if !slices.Contains(names["j2"], SourceCooc) || !slices.Contains(names["t3"], SourceALS) || !slices.Contains(names["t3"], SourceContent) {
			t.Fatalf("sources per item %v", names)
		}
		// The co-engagement score is a feature of every candidate, listed
		// or not: t3 is reached by no history item.
		for _, h := range res.Items {
			if h.ID == "t3" && h.Sources.CoocScore != 0 {
				t.Fatalf("t3 cooc score %v, want 0", h.Sources.CoocScore)
			}
			if h.ID == "j2" && h.Sources.CoocScore != 1 {
				t.Fatalf("j2 cooc score %v, want 1 (the best)", h.Sources.CoocScore)
			}
		}
	})
	t.Run("a cold user gets the named sources only", func(t *testing.T) {
		e := setup(t)
		res, err := e.Recommend(ctx, RecommendRequest{User: User{ID: "new"}, K: 3, Sources: []string{SourceCooc}})
		if err != nil || len(res.Items) != 0 {
			t.Fatalf("co-engagement without a history: %v, %v; want nothing", ids(res), err)
		}
		res, err = e.Recommend(ctx, RecommendRequest{User: User{ID: "new"}, K: 3, Sources: []string{SourcePopular}, Order: OrderRetrieval})
		if err != nil || !slices.Equal(ids(res), []string{"j2", "t1", "t3"}) {
			t.Fatalf("popular alone: %v, %v; want [j2 t1 t3]", ids(res), err)
		}
	})
	t.Run("exclude items", func(t *testing.T) {
		res, err := setup(t).Recommend(ctx, RecommendRequest{RecentItems: []string{"m1"}, K: 5, Sources: []string{SourceCooc}, ExcludeItems: []string{"j2"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(res); !slices.Equal(got, []string{"w1"}) {
			t.Fatalf("got %v, want [w1]", got)
		}
	})
	for _, tc := range []struct {
		name  string
		req   RecommendRequest
		field string
	}{
		{"unknown source", RecommendRequest{RecentItems: []string{"m1"}, K: 3, Sources: []string{"magic"}}, "sources"},
		{"unknown order", RecommendRequest{RecentItems: []string{"m1"}, K: 3, Order: "random"}, "order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := setup(t).Recommend(ctx, tc.req)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != tc.field {
				t.Fatalf("err = %v, want a bad %s", err, tc.field)
			}
		})
	}
}

func TestRecommendConfig_Validate(t *testing.T) {
	c := DefaultRecommendConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Quotas.ALS, c.HistoryDecay, c.MaxHistory = -1, 0, 0
	err := c.Validate()
	for _, key := range []string{"quotas.als", "history_decay", "max_history"} {
		if err == nil || !slices.ContainsFunc(strings.Split(err.Error(), "\n"), func(l string) bool { return strings.HasPrefix(l, key) }) {
			t.Fatalf("err %v does not name %s", err, key)
		}
	}
}

// The popular source orders by the event log's decayed use, and the
// catalog's popularity orders the items used equally (or not at all).
func TestOpenSources_PopularOrder(t *testing.T) {
	g, _ := newGen(t, "v1", testItems(), &fakeScorer{weights: []float32{1, 0}})
	dir := t.TempDir()
	n := len(g.items)
	counts := make([]float32, 2*n) // decayed, then all-time
	counts[g.byID["t3"]], counts[g.byID["w1"]] = 5, 2
	if err := bundle.WriteFloats(filepath.Join(dir, bundle.PopularFile), counts); err != nil {
		t.Fatal(err)
	}
	g.Manifest.Sources = &bundle.Sources{Popular: &bundle.Model{File: bundle.PopularFile}}
	if err := g.openSources(dir); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, id := range g.popular[:5] {
		got = append(got, g.items[id].ID)
	}
	// t3 and w1 by use; then j2 9, t1 8, t2 7 by the catalog.
	if want := []string{"t3", "w1", "j2", "t1", "t2"}; !slices.Equal(got, want) {
		t.Fatalf("popular order %v, want %v", got, want)
	}
}

// TestRecommend_FactorScan: scanning the factors themselves answers what
// the exact search over their augmented vectors does, the same items with
// the same source scores and ranks, for every history of one or two
// items, the factorisation alone and merged.
func TestRecommend_FactorScan(t *testing.T) {
	ctx := context.Background()
	answer := func(scan bool, req RecommendRequest) Result {
		t.Helper()
		e := newEngine(t, Deps{Features: storeFor(testItems()), Rules: compileRules(t)})
		e.cfg.Recommend.Quotas.ALS = 2 // so the merged list holds items the factorisation did not list
		g := collabGen(t)
		g.alsExact = scan
		e.publish(g)
		res, err := e.Recommend(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	items := testItems()
	for i := range items {
		for j := i; j < len(items); j++ {
			hist := []string{items[i].ID}
			if j > i {
				hist = append(hist, items[j].ID)
			}
			for _, src := range [][]string{{SourceALS}, nil} {
				req := RecommendRequest{RecentItems: hist, K: 8, Sources: src, Explain: true}
				a, b := answer(false, req), answer(true, req)
				if len(a.Items) != len(b.Items) {
					t.Fatalf("history %v, sources %v: %d items from the index, %d from the scan", hist, src, len(a.Items), len(b.Items))
				}
				for r := range a.Items {
					x, y := a.Items[r], b.Items[r]
					if x.ID != y.ID || x.Sources.ALSScore != y.Sources.ALSScore || (x.Sources.ALS == nil) != (y.Sources.ALS == nil) ||
						(x.Sources.ALS != nil && *x.Sources.ALS != *y.Sources.ALS) {
						t.Fatalf("history %v, sources %v, rank %d: index %s %+v, scan %s %+v", hist, src, r, x.ID, x.Sources, y.ID, y.Sources)
					}
				}
			}
		}
	}
}

// ordered sorts by its keys, largest first, ties in item-number order:
// exactly what a stable sort of the numbers by the same comparison gives,
// over keys with many ties, NaN and times that differ only in
// nanoseconds or lie far from 1970.
func TestOrdered_MatchesStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 5000
	first, second := make([]float64, n), make([]float64, n)
	times := make([]time.Time, n)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		first[i], second[i] = float64(rng.IntN(4)), float64(rng.IntN(3))
		if rng.IntN(50) == 0 {
			first[i] = math.NaN()
		}
		switch rng.IntN(4) {
		case 0:
			times[i] = base.Add(time.Duration(rng.IntN(3)))
		case 1:
			times[i] = base.AddDate(-rng.IntN(400), 0, 0)
		default:
			times[i] = base.Add(time.Duration(rng.IntN(1000)) * time.Hour)
		}
	}
	stable := func(compare func(a, b int32) int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(i)
		}
		slices.SortStableFunc(out, compare)
		return out
	}
	gotPop := ordered(n, func(i int32) (float64, float64) { return first[i], second[i] })
	wantPop := stable(func(a, b int32) int {
		if c := cmp.Compare(first[b], first[a]); c != 0 {
			return c
		}
		return cmp.Compare(second[b], second[a])
	})
	if !slices.Equal(gotPop, wantPop) {
		t.Fatalf("two float keys: ordered differs from the stable sort")
	}
	gotNew := ordered(n, func(i int32) (int64, int64) { return times[i].Unix(), int64(times[i].Nanosecond()) })
	wantNew := stable(func(a, b int32) int { return times[b].Compare(times[a]) })
	if !slices.Equal(gotNew, wantNew) {
		t.Fatalf("times: ordered differs from the stable sort")
	}
}
