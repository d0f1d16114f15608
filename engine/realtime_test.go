package engine

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/internal/realtime"
	"github.com/recsys-dev/recsys/rank"
)

// fakeRealtime serves fixed decayed counts and one history per user.
type fakeRealtime struct {
	mu      sync.Mutex
	counts  map[string]realtime.Stats
	history map[string][]string
	err     error
	calls   []string // the users asked for
	asked   int      // item ids asked for, over all calls
}

func (f *fakeRealtime) FetchRealtime(_ context.Context, _ time.Time, user string, ids []string, counters bool) (rank.Realtime, error) {
	f.mu.Lock()
	f.calls = append(f.calls, user)
	if counters {
		f.asked += len(ids)
	}
	f.mu.Unlock()
	if f.err != nil {
		return rank.Realtime{}, f.err
	}
	var out rank.Realtime
	if counters {
		out.Items = make([]realtime.Stats, len(ids))
		for i, id := range ids {
			out.Items[i] = f.counts[id]
		}
	}
	out.History = f.history[user]
	return out, nil
}

func (f *fakeRealtime) HalfLife() time.Duration { return time.Hour }

// withFeatures re-lays g out for another feature list (defaults all -1, so
// a filled value is told from a default).
func withFeatures(t *testing.T, g *Generation, names ...string) {
	t.Helper()
	defaults := make([]float32, len(names))
	for i := range defaults {
		defaults[i] = -1
	}
	g.Manifest.FeatureNames, g.Manifest.FeatureDefaults = names, defaults
	var err error
	if g.layout, g.itemDefaults, err = layoutOf(g.Manifest); err != nil {
		t.Fatal(err)
	}
}

func TestEngine_RealtimeFeatures(t *testing.T) {
	items := testItems()
	names := []string{"retrieval_score", "log_popularity", "item_clicks", "item_ctr", "user_category_affinity", "user_brand_affinity", "user_history"}
	rt := &fakeRealtime{
		counts: map[string]realtime.Stats{"j1": {Impressions: 80, Clicks: 9}},
		// Most recent first: j2 (jazz, Blue) weighs 1, t1 (toys, Kindred) 0.9,
		// then an id the catalog no longer has.
		history: map[string][]string{"u1": {"j2", "t1", "gone"}},
	}
	e := newEngine(t, Deps{Features: storeFor(items), Realtime: rt, Rules: compileRules(t)})
	g, _ := newGen(t, "v1", items, &fakeScorer{weights: make([]float32, len(names))})
	withFeatures(t, g, names...)
	e.publish(g)

	res, err := e.Search(context.Background(), SearchRequest{Query: "guitar album", K: 10, User: User{ID: "u1"}, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Degraded) != 0 {
		t.Fatalf("degraded %v", res.Degraded)
	}
	const jazz, toys = 1 / 1.9, 0.9 / 1.9
	want := map[string][]float64{ // item_clicks, item_ctr, category, brand, history
		"j1": {math.Log1p(9), (9 + 1) / 100.0, jazz, jazz, math.Log1p(2)},
		"t1": {0, 1 / 20.0, toys, toys, math.Log1p(2)},
		"m1": {0, 1 / 20.0, 0, 0, math.Log1p(2)},
	}
	seen := 0
	for _, h := range res.Items {
		w, ok := want[h.ID]
		if !ok {
			continue
		}
		seen++
		for k, v := range w {
			if got := float64(h.Features[2+k]); math.Abs(got-v) > 1e-6 {
				t.Errorf("%s %s = %v, want %v", h.ID, names[2+k], got, v)
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("only %d of %v in %v", seen, want, ids(res))
	}

	// An anonymous request reads no history: the user features say "none".
	res, err = e.Search(context.Background(), SearchRequest{Query: "guitar album", K: 3, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Items[0].Features; f[4] != 0 || f[5] != 0 || f[6] != 0 {
		t.Errorf("anonymous user features = %v, want 0", f[4:])
	}

	// The counter updater's Redis down: defaults, counted as degraded.
	rt.err = errors.New("connection refused")
	res, err = e.Search(context.Background(), SearchRequest{Query: "guitar album", K: 3, User: User{ID: "u1"}, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Degraded, []string{"features"}) {
		t.Errorf("degraded = %v, want [features]", res.Degraded)
	}
	for _, h := range res.Items {
		for k := 2; k < len(names); k++ {
			if h.Features[k] != -1 {
				t.Errorf("%s %s = %v, want the default -1", h.ID, names[k], h.Features[k])
			}
		}
	}
}

func TestEngine_NoRealtimeFetchWithoutRealtimeFeatures(t *testing.T) {
	items := testItems()
	rt := &fakeRealtime{}
	e := newEngine(t, Deps{Features: storeFor(items), Realtime: rt})
	g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{1, 0}})
	e.publish(g)
	if _, err := e.Search(context.Background(), SearchRequest{Query: "guitar", K: 3, User: User{ID: "u1"}}); err != nil {
		t.Fatal(err)
	}
	if len(rt.calls) != 0 {
		t.Fatalf("fetched real-time state %d times for a bundle without such features", len(rt.calls))
	}
	// Counter features only: counts are read but no user history.
	withFeatures(t, g, "retrieval_score", "item_ctr")
	if _, err := e.Search(context.Background(), SearchRequest{Query: "guitar", K: 3, User: User{ID: "u1"}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rt.calls, []string{""}) {
		t.Fatalf("calls = %q, want one without a user", rt.calls)
	}
}

func TestLayoutOf_RefusesUnknownFeature(t *testing.T) {
	m := &bundle.Manifest{FeatureNames: []string{"retrieval_score", "from_the_future"}, FeatureDefaults: []float32{0, 0}}
	if _, _, err := layoutOf(m); err == nil || !strings.Contains(err.Error(), `"from_the_future"`) {
		t.Fatalf("err = %v, want the unknown feature named", err)
	}
	// An item column the live catalog could not compute for a changed item
	// (a request feature stored as an item one) is refused too.
	m = &bundle.Manifest{FeatureNames: []string{"retrieval_score"}, FeatureDefaults: []float32{0}, ItemFeatureNames: []string{"retrieval_score"}}
	if _, _, err := layoutOf(m); err == nil || !strings.Contains(err.Error(), `item feature "retrieval_score"`) {
		t.Fatalf("err = %v, want the item feature named", err)
	}
}

func TestEngine_Explore(t *testing.T) {
	items := testItems()
	for _, rate := range []float64{0, 1} {
		snk := &sink{}
		e, err := New(Config{Candidates: 50, RankTimeout: time.Second, RecentDecay: 0.8, MaxRecent: 20, ExploreRate: rate},
			Deps{Features: storeFor(items), Impressions: snk, Rules: compileRules(t)})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{0, 1}}) // by popularity
		e.publish(g)
		ranked := []string{"j2", "t1", "t3", "m1", "m2", "j1", "w1"} // t2 is unavailable
		reordered := 0
		const requests = 40
		for range requests {
			res, err := e.Recommend(context.Background(), RecommendRequest{User: User{ID: "u"}, K: 10})
			if err != nil {
				t.Fatal(err)
			}
			got := ids(res)
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(ranked))) {
				t.Fatalf("rate %v: served %v, want a permutation of %v", rate, got, ranked)
			}
			if !slices.Equal(got, ranked) {
				reordered++
			}
		}
		explored := 0
		for _, ev := range snk.events {
			if ev.Explore {
				explored++
			}
			for pos, it := range ev.Items {
				if it.Position != pos {
					t.Fatalf("impression item %d logged at position %d", pos, it.Position)
				}
			}
		}
		switch rate {
		case 0:
			if reordered != 0 || explored != 0 {
				t.Fatalf("rate 0: %d reordered, %d explore impressions", reordered, explored)
			}
		case 1:
			// 7! orders: 40 shuffles all landing on the ranked one is
			// (1/5040)^40.
			if explored != requests || reordered < requests/2 {
				t.Fatalf("rate 1: %d of %d impressions marked explore, %d reordered", explored, requests, reordered)
			}
		}
	}
}

func TestEngine_RecommendFromStoredHistory(t *testing.T) {
	items := testItems()
	rt := &fakeRealtime{history: map[string][]string{"u1": {"m1", "gone"}}}
	e := newEngine(t, Deps{Features: storeFor(items), Realtime: rt, Rules: compileRules(t)})
	g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{1, 0}}) // by retrieval score
	e.publish(g)
	ctx := context.Background()

	res, err := e.Recommend(ctx, RecommendRequest{User: User{ID: "u1"}, K: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res); len(got) != 3 || got[0] != "m2" || has(got, "m1") || len(res.Degraded) != 0 {
		t.Fatalf("got %v (degraded %v); want m2 (closest to the stored m1) first and m1 left out", got, res.Degraded)
	}

	res, err = e.Recommend(ctx, RecommendRequest{User: User{ID: "new"}, K: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res); !slices.Equal(got, []string{"j2", "t1", "t3"}) {
		t.Fatalf("a user without history got %v, want the popular [j2 t1 t3]", got)
	}

	rt.err = errors.New("connection refused")
	res, err = e.Recommend(ctx, RecommendRequest{User: User{ID: "u1"}, K: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res); !slices.Equal(got, []string{"j2", "t1", "t3"}) || !slices.Equal(res.Degraded, []string{"history"}) {
		t.Fatalf("history store down: got %v, degraded %v; want popular items and [history]", got, res.Degraded)
	}
}

// Recommend by user id reads the stored history once: the retrieval vector
// and the user features use the same read.
func TestEngine_RecommendReadsHistoryOnce(t *testing.T) {
	items := testItems()
	rt := &fakeRealtime{history: map[string][]string{"u1": {"m1"}}}
	e := newEngine(t, Deps{Features: storeFor(items), Realtime: rt, Rules: compileRules(t)})
	names := []string{"retrieval_score", "log_popularity", "item_ctr", "user_category_affinity"}
	g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{1, 0, 0, 0}})
	withFeatures(t, g, names...)
	e.publish(g)
	res, err := e.Recommend(context.Background(), RecommendRequest{User: User{ID: "u1"}, K: 3, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rt.calls, []string{"u1", ""}) {
		t.Fatalf("real-time reads by user = %q, want one with the user (history) and one without (counters)", rt.calls)
	}
	// m2 shares m1's category (heavy-metal): affinity 1 from that one read.
	if res.Items[0].ID != "m2" || res.Items[0].Features[3] != 1 {
		t.Fatalf("top %s with features %v, want m2 with category affinity 1", res.Items[0].ID, res.Items[0].Features)
	}
}

// TestEngine_CounterCache: within engine.counter_cache a request's
// counters come from memory, decayed to its time, and only the items not
// cached are read; past it (or with the cache off) every read reaches the
// store.
func TestEngine_CounterCache(t *testing.T) {
	items := testItems()
	names := []string{"retrieval_score", "item_impressions", "item_clicks"}
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, ttl := range []time.Duration{0, time.Hour} {
		t.Run(ttl.String(), func(t *testing.T) {
			rt := &fakeRealtime{counts: map[string]realtime.Stats{"j1": {Impressions: 80, Clicks: 8, At: at}}}
			e, err := New(Config{Candidates: 50, RankTimeout: time.Second, RecentDecay: 0.8, MaxRecent: 20, CounterCache: ttl},
				Deps{Features: storeFor(items), Realtime: rt})
			if err != nil {
				t.Fatal(err)
			}
			clock := at
			e.now = func() time.Time { return clock }
			g, _ := newGen(t, "v1", items, &fakeScorer{weights: make([]float32, len(names))})
			withFeatures(t, g, names...)
			e.publish(g)
			clicks := func() float64 {
				t.Helper()
				res, err := e.Search(context.Background(), SearchRequest{Query: "guitar album", K: 10, Explain: true})
				if err != nil || len(res.Degraded) > 0 {
					t.Fatalf("search: %v, degraded %v", err, res.Degraded)
				}
				for _, h := range res.Items {
					if h.ID == "j1" {
						return math.Expm1(float64(h.Features[2]))
					}
				}
				t.Fatalf("j1 not in %v", ids(res))
				return 0
			}
			if got := clicks(); math.Abs(got-8) > 1e-4 {
				t.Fatalf("first read: %v clicks, want 8", got)
			}
			first := rt.asked
			rt.mu.Lock()
			rt.counts["j1"] = realtime.Stats{Impressions: 800, Clicks: 80, At: at}
			rt.mu.Unlock()
			// An hour later (one half-life of the fake store).
			clock = at.Add(time.Hour)
			got := clicks()
			if ttl == 0 {
				if math.Abs(got-80) > 1e-3 || rt.asked != 2*first {
					t.Fatalf("cache off: %v clicks from %d ids, want the store's 80 from %d", got, rt.asked-first, first)
				}
				return
			}
			if math.Abs(got-4) > 1e-4 || rt.asked != first {
				t.Fatalf("cached: %v clicks, %d more ids read; want 8 decayed one half-life (4) and none read", got, rt.asked-first)
			}
		})
	}
}
