package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/catalog/itemlog"
)

// memItems is an in-memory items topic.
type memItems struct {
	mu      sync.Mutex
	changes []itemlog.Change
	down    bool // End fails, Follow waits
}

func (m *memItems) write(cs ...itemlog.Change) []itemlog.Change {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range cs {
		cs[i].Offset = int64(len(m.changes))
		m.changes = append(m.changes, cs[i])
	}
	return cs
}

func (m *memItems) End(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return 0, errors.New("connection refused")
	}
	return int64(len(m.changes)), nil
}

func (m *memItems) Replay(_ context.Context, from, to int64, _ func(int64, error), fn func(itemlog.Change) error) error {
	m.mu.Lock()
	cs := slices.Clone(m.changes[from:to])
	m.mu.Unlock()
	for _, c := range cs {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *memItems) Follow(ctx context.Context, from int64, _ func(int64, error), fn func([]itemlog.Change, int64) error) error {
	for ctx.Err() == nil {
		m.mu.Lock()
		var cs []itemlog.Change
		if !m.down {
			cs = slices.Clone(m.changes[from:])
		}
		m.mu.Unlock()
		if len(cs) > 0 {
			from += int64(len(cs))
			if err := fn(cs, from); err != nil {
				return err
			}
		}
		time.Sleep(time.Millisecond)
	}
	return ctx.Err()
}

func upsert(it catalog.Item) itemlog.Change {
	return itemlog.Change{Op: itemlog.OpUpsert, ID: it.ID, Item: &it, At: time.Now()}
}

func del(id string) itemlog.Change {
	return itemlog.Change{Op: itemlog.OpDelete, ID: id, At: time.Now()}
}

// liveEngine serves the test items from in-memory rows (no store), with
// the retrieval features, the filter rules and an items log.
func liveEngine(t *testing.T, log *memItems) (*Engine, *Generation) {
	t.Helper()
	e := newEngine(t, Deps{Items: log, Rules: compileRules(t)})
	g := liveGen(t, "v1")
	if err := e.publishLive(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	return e, g
}

func liveGen(t *testing.T, version string) *Generation {
	items := testItems()
	w := make([]float32, len(retrievalFeatures))
	w[0] = 1
	g, _ := newGen(t, version, items, &fakeScorer{weights: w})
	withFeatures(t, g, retrievalFeatures...)
	for i := range items {
		g.itemRows = append(g.itemRows, float32(math.Log1p(items[i].Popularity)))
	}
	return g
}

func apply(t *testing.T, e *Engine, log *memItems, cs ...itemlog.Change) {
	t.Helper()
	cs = log.write(cs...)
	if err := e.ApplyItems(context.Background(), cs, cs[len(cs)-1].Offset+1); err != nil {
		t.Fatal(err)
	}
}

func search(t *testing.T, e *Engine, q, mode string, f Filters) []string {
	t.Helper()
	res, err := e.Search(context.Background(), SearchRequest{Query: q, K: 10, Retrieval: mode, Filters: f})
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	return ids(res)
}

// withFolding runs fn with the live view folded after every batch and
// with the default bounds (which these small tests never reach).
func withFolding(t *testing.T, fn func(t *testing.T)) {
	t.Run("unfolded", fn)
	t.Run("folded", func(t *testing.T) {
		defer func(n int, d time.Duration) { foldMin, foldEvery = n, d }(foldMin, foldEvery)
		foldMin, foldEvery = 1, 0
		fn(t)
	})
}

func TestLive_ChangesReachSearchAndRecommend(t *testing.T) { withFolding(t, testLiveChanges) }

func testLiveChanges(t *testing.T) {
	log := &memItems{}
	e, g := liveEngine(t, log)
	items := testItems()
	if !has(search(t, e, "jazz", ModeHybrid, Filters{}), "j1") {
		t.Fatal("j1 not found before any change")
	}

	// Marked unavailable: the filter rule drops it in every mode.
	j1 := items[2]
	j1.Available = false
	apply(t, e, log, upsert(j1))
	for _, mode := range []string{ModeHybrid, ModeLexical, ModeDense} {
		if got := search(t, e, "jazz", mode, Filters{}); has(got, "j1") {
			t.Errorf("%s: unavailable j1 still returned: %v", mode, got)
		}
	}

	// A new item in a new category is found by its words, by the new
	// category in a filter, by the exact id and as a recommendation seed.
	n1 := catalog.Item{ID: "n1", Title: "purple synthesizer keyboard", Brand: "Moog", Category: "synths",
		Price: 99, Available: true, CreatedAt: items[0].CreatedAt, Popularity: 1}
	apply(t, e, log, upsert(n1))
	for _, mode := range []string{ModeHybrid, ModeLexical, ModeDense} {
		if got := search(t, e, "synthesizer", mode, Filters{}); len(got) == 0 || got[0] != "n1" {
			t.Errorf("%s: new item not first for its word: %v", mode, got)
		}
	}
	if got := search(t, e, "keyboard", ModeHybrid, Filters{Categories: []string{"synths"}}); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("filter on the new category: %v, want [n1]", got)
	}
	if got := search(t, e, "n1", ModeHybrid, Filters{}); len(got) == 0 || got[0] != "n1" {
		t.Errorf("exact id: %v", got)
	}
	if res, err := e.Search(context.Background(), SearchRequest{Query: "synthesizer", K: 1, Explain: true}); err != nil ||
		math.Abs(float64(feature(res, res.Items[0], "log_popularity"))-math.Log1p(1)) > 1e-6 {
		t.Errorf("the new item's feature row (from memory): %v %v", res.Items, err)
	}
	res, err := e.Recommend(context.Background(), RecommendRequest{SeedItem: "n1", K: 3})
	if err != nil || len(res.Items) == 0 {
		t.Fatalf("recommend from the new item: %v %v", res, err)
	}
	if res, err := e.Recommend(context.Background(), RecommendRequest{RecentItems: []string{"n1"}, K: 3}); err != nil || has(ids(res), "n1") {
		t.Errorf("recent new item: %v %v (it must be excluded, and known)", ids(res), err)
	}

	// Re-described: found by its new words, no longer by its old ones.
	t3 := items[6]
	t3.Title = "velvet elephant cushion"
	apply(t, e, log, upsert(t3))
	if got := search(t, e, "velvet", ModeLexical, Filters{}); !slices.Equal(got, []string{"t3"}) {
		t.Errorf("new words: %v, want [t3]", got)
	}
	if got := search(t, e, "bear", ModeLexical, Filters{}); has(got, "t3") {
		t.Errorf("old words still match t3: %v", got)
	}

	// Deleted: never returned, unknown as a seed, shown as deleted.
	apply(t, e, log, del("t1"), del("n1"))
	for _, q := range []string{"toy", "guitar", "synthesizer"} {
		for _, mode := range []string{ModeHybrid, ModeLexical, ModeDense} {
			if got := search(t, e, q, mode, Filters{}); has(got, "t1") || has(got, "n1") {
				t.Errorf("%s %q: deleted item returned: %v", mode, q, got)
			}
		}
	}
	if res, err := e.Recommend(context.Background(), RecommendRequest{User: User{ID: "nobody"}, K: 8}); err != nil || has(ids(res), "t1") || len(res.Items) == 0 {
		t.Errorf("popular items for a new user: %v %v (deleted t1 must not be among them)", ids(res), err)
	}
	if _, err := e.Recommend(context.Background(), RecommendRequest{SeedItem: "t1", K: 3}); err == nil {
		t.Error("deleted seed item accepted")
	}
	if li, ok := e.Item("t1"); !ok || !li.Deleted || li.Source != "delta" || li.Offset == nil || *li.Offset != 3 {
		t.Errorf("Item(t1) = %+v %v", li, ok)
	}
	if li, ok := e.Item("j2"); !ok || li.Source != "bundle" {
		t.Errorf("Item(j2) = %+v %v", li, ok)
	}
	if e.Has("t1") || !e.Has("j2") {
		t.Error("Has disagrees with the live catalog")
	}
	if got := e.ItemsOffset(); got != 5 {
		t.Errorf("ItemsOffset = %d, want 5", got)
	}
	v := g.live.Load()
	if v.stats.deleted != 2 || v.stats.inserted != 1 || v.stats.changed != 4 {
		t.Errorf("stats %+v", v.stats)
	}
	// j1's change (availability only) is folded or an entry; either way
	// the admin API sees where it came from.
	if li, ok := e.Item("j1"); !ok || li.Source != "delta" || li.Item.Available || li.Offset == nil || *li.Offset != 0 {
		t.Errorf("Item(j1) = %+v %v", li, ok)
	}
	if foldMin == 1 && (v.fold == nil || v.entry(2) != nil) {
		t.Errorf("folding on: j1 should be folded (fold %v, entry %+v)", v.fold != nil, v.entry(2))
	}

	// Back to the bundle's text: the bundle's vector and postings serve again.
	t3 = items[6]
	apply(t, e, log, upsert(t3))
	if got := search(t, e, "bear", ModeLexical, Filters{}); !has(got, "t3") {
		t.Errorf("restored text not found: %v", got)
	}
	if e := g.live.Load().entry(6); e != nil && (e.text || e.vec >= 0) {
		t.Errorf("restored item entry %+v", e)
	}
	if got := search(t, e, "jazz", ModeLexical, Filters{Brands: []string{"Blue"}}); has(got, "j1") || !has(got, "j2") {
		t.Errorf("brand filter after the changes: %v", got)
	}
}

// A load replays the changes since the new bundle's offset before it goes
// live, so a reload never undoes one; the bundle's own offset skips what
// it already holds.
func TestLive_ReloadReplays(t *testing.T) {
	log := &memItems{}
	e, _ := liveEngine(t, log)
	items := testItems()
	j2 := items[3]
	j2.Available = false
	apply(t, e, log, upsert(j2), upsert(catalog.Item{ID: "n1", Title: "purple synthesizer", Available: true, CreatedAt: items[0].CreatedAt}))

	g2 := liveGen(t, "v2")
	if err := e.publishLive(context.Background(), g2); err != nil {
		t.Fatal(err)
	}
	if e.Current() != "v2" {
		t.Fatal("v2 not live")
	}
	if got := search(t, e, "jazz piano", ModeHybrid, Filters{}); has(got, "j2") {
		t.Errorf("reload undid j2's change: %v", got)
	}
	if got := search(t, e, "synthesizer", ModeLexical, Filters{}); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("reload lost n1: %v", got)
	}

	// A bundle that folded both changes in replays nothing: its own j2 is
	// available (as its catalog says), and nothing is applied twice.
	g3 := liveGen(t, "v3")
	two := int64(2)
	g3.Manifest.ItemsOffset = &two
	g3.live.Store(nil)
	if err := e.publishLive(context.Background(), g3); err != nil {
		t.Fatal(err)
	}
	if v := g3.live.Load(); v.next != 2 || v.hasDelta() {
		t.Errorf("v3 view: next %d, delta %v", v.next, v.hasDelta())
	}
	// A batch the bundle already holds is skipped.
	if err := e.ApplyItems(context.Background(), log.changes, 2); err != nil || g3.live.Load().hasDelta() {
		t.Errorf("re-applied changes the bundle holds: %v", err)
	}
}

// Two engines applying the same changes answer identically, while
// requests run during the application (-race).
func TestLive_ReplicasAgree(t *testing.T) {
	// Small enough that both replicas rebuild the large delta lexical
	// index, at different changes.
	defer func(n int) { lexSmallMin = n }(lexSmallMin)
	lexSmallMin = 20
	// And folded often, at different changes in each replica.
	defer func(n int, d time.Duration) { foldMin, foldEvery = n, d }(foldMin, foldEvery)
	foldMin, foldEvery = 5, 0
	logA, logB := &memItems{}, &memItems{}
	a, _ := liveEngine(t, logA)
	b, _ := liveEngine(t, logB)
	items := testItems()
	words := []string{"red", "blue", "wooden", "metal", "jazz", "toy", "album", "guitar", "piano", "train", "plush", "wine", "velvet", "brass", "drum"}
	r := rand.New(rand.NewPCG(7, 7))
	var changes []itemlog.Change
	for i := range 600 {
		switch r.IntN(4) {
		case 0:
			it := items[r.IntN(len(items))]
			it.Available = r.IntN(2) == 0
			it.Price = float64(r.IntN(100))
			changes = append(changes, upsert(it))
		case 1:
			it := catalog.Item{ID: fmt.Sprintf("new%d", r.IntN(200)), Available: true, CreatedAt: items[0].CreatedAt,
				Title: words[r.IntN(len(words))] + " " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]}
			changes = append(changes, upsert(it))
		case 2:
			it := items[r.IntN(len(items))]
			it.Title = words[r.IntN(len(words))] + " " + it.Title
			changes = append(changes, upsert(it))
		default:
			if i%3 == 0 {
				changes = append(changes, del(fmt.Sprintf("new%d", r.IntN(200))))
			} else {
				changes = append(changes, del(items[r.IntN(len(items))].ID))
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, e := range []*Engine{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, q := range []string{"jazz", "toy guitar", "velvet drum"} {
					if _, err := e.Search(ctx, SearchRequest{Query: q, K: 5}); err != nil && ctx.Err() == nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	for start := 0; start < len(changes); start += 37 {
		batch := changes[start:min(start+37, len(changes))]
		apply(t, a, logA, slices.Clone(batch)...)
	}
	for start := 0; start < len(changes); start += 91 { // other batch boundaries
		batch := changes[start:min(start+91, len(changes))]
		apply(t, b, logB, slices.Clone(batch)...)
	}
	cancel()
	wg.Wait()
	for _, w := range words {
		for _, mode := range []string{ModeHybrid, ModeLexical, ModeDense} {
			ra, rb := search(t, a, w, mode, Filters{}), search(t, b, w, mode, Filters{})
			if !slices.Equal(ra, rb) {
				t.Errorf("%s %q: replicas differ: %v vs %v", mode, w, ra, rb)
			}
		}
	}
}

// rowStore is a feature store that serves the rows written into it.
type rowStore struct {
	mu   sync.Mutex
	rows map[string][]float32
}

func (s *rowStore) Fetch(_ context.Context, _ string, ids []string, dst, defaults []float32) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, missing := len(defaults), 0
	for i, id := range ids {
		if r, ok := s.rows[id]; ok {
			copy(dst[i*f:], r)
		} else {
			copy(dst[i*f:], defaults)
			missing++
		}
	}
	return missing, nil
}
func (s *rowStore) Ready(context.Context, string) (bool, error) { return true, nil }
func (s *rowStore) MarkReady(context.Context, string) error     { return nil }
func (s *rowStore) WriteItems(_ context.Context, _ string, ids []string, rows [][]float32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		s.rows[id] = slices.Clone(rows[i])
	}
	return nil
}

// A changed item's features are computed as the build computes them and
// written to the feature store, so ranking sees them at once.
func TestLive_FeaturesReachTheStore(t *testing.T) {
	log := &memItems{}
	store := &rowStore{rows: map[string][]float32{}}
	for _, it := range testItems() {
		store.rows[it.ID] = []float32{float32(math.Log1p(it.Popularity))}
	}
	e := newEngine(t, Deps{Items: log, Features: store, Seeder: store})
	g := liveGen(t, "v1")
	if err := e.publishLive(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	n1 := catalog.Item{ID: "n1", Title: "purple synthesizer", Available: true, Popularity: 41, CreatedAt: testItems()[0].CreatedAt}
	apply(t, e, log, upsert(n1))
	if r := store.rows["n1"]; len(r) != 1 || math.Abs(float64(r[0])-math.Log1p(41)) > 1e-6 {
		t.Fatalf("store row of the new item: %v", r)
	}
	res, err := e.Search(context.Background(), SearchRequest{Query: "synthesizer", K: 1, Explain: true})
	if err != nil || len(res.Items) != 1 || res.Items[0].ID != "n1" || slices.Contains(res.Degraded, "features") {
		t.Fatalf("search: %+v %v", res, err)
	}
	if got := feature(res, res.Items[0], "log_popularity"); math.Abs(float64(got)-math.Log1p(41)) > 1e-6 {
		t.Errorf("ranker saw log_popularity %v, want %v", got, math.Log1p(41))
	}

	// Folded changes are written again when the store loses its rows, as
	// entries are: a re-seed must not bring back the bundle's row.
	defer func(n int, d time.Duration) { foldMin, foldEvery = n, d }(foldMin, foldEvery)
	foldMin, foldEvery = 1, 0
	j2 := testItems()[3]
	j2.Popularity = 99
	apply(t, e, log, upsert(j2))
	if g.live.Load().fold == nil || g.live.Load().entry(3) != nil {
		t.Fatal("j2's change was not folded")
	}
	ids, rows := g.live.Load().liveRows()
	i := slices.Index(ids, "j2")
	if i < 0 || math.Abs(float64(rows[i][0])-math.Log1p(99)) > 1e-6 || !slices.Contains(ids, "n1") {
		t.Errorf("rows a re-seed writes: %v %v", ids, rows)
	}
}

// The follower applies what is written, and readiness tells a quiet
// topic from an unreachable one: the live catalog's staleness is never
// silent.
func TestLive_RunItemsAndReadiness(t *testing.T) {
	defer func(d time.Duration) { itemsWatch = d }(itemsWatch)
	itemsWatch = 10 * time.Millisecond
	log := &memItems{}
	items := testItems()
	j1 := items[2]
	j1.Available = false
	log.write(upsert(j1)) // before the start: applied before the bundle goes live
	e, _ := liveEngine(t, log)
	if got := search(t, e, "jazz", ModeLexical, Filters{}); has(got, "j1") {
		t.Fatalf("a change written before the start is not live at load: %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.RunItems(ctx) }()
	defer func() { cancel(); <-done }()
	if err := e.ItemsReady(ctx); err != nil {
		t.Fatal(err)
	}

	log.write(del("j2"))
	waitFor(t, "the follower to apply a delete", func() bool { return !e.Has("j2") })

	log.mu.Lock()
	log.down = true
	log.mu.Unlock()
	waitFor(t, "readiness to report the topic unreachable", func() bool { return e.ItemsReachable(ctx) != nil })
	if res, err := e.Search(ctx, SearchRequest{Query: "jazz", K: 3}); err != nil || !slices.Contains(res.Degraded, "items") {
		t.Errorf("a response while the items topic is unreachable: degraded %v, %v", res.Degraded, err)
	}
	log.mu.Lock()
	log.down = false
	log.mu.Unlock()
	waitFor(t, "readiness to recover", func() bool { return e.ItemsReachable(ctx) == nil })
	if res, _ := e.Search(ctx, SearchRequest{Query: "jazz", K: 3}); slices.Contains(res.Degraded, "items") {
		t.Errorf("still flagged after the topic answered: %v", res.Degraded)
	}
}

// The live table is copy-on-write at every chunk size: a writer's table
// holds every entry set through it and the earlier tables, still read by
// requests, hold none of its changes.
func TestTable_CopyOnWrite(t *testing.T) {
	for _, n := range []int{0, 10_000, 1_000_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			want := map[int32]*liveItem{}
			var tables []table
			var wants []map[int32]*liveItem
			cur := table{}
			for batch := range 20 {
				w := newTableWriter(cur, n)
				for range 50 {
					id := int32(rng.IntN(max(n, 100) + 100)) // past the bundle too
					e := &liveItem{offset: int64(batch)}
					w.set(id, e)
					want[id] = e
				}
				cur = w.t
				tables, wants = append(tables, cur), append(wants, maps.Clone(want))
			}
			if got, shift := cur.shift, chunkShift(n); got != shift {
				t.Fatalf("shift %d, want %d", got, shift)
			}
			for i, tb := range tables {
				seen := 0
				tb.each(func(id int32, e *liveItem) {
					seen++
					if wants[i][id] != e {
						t.Fatalf("table %d: item %d holds %p, want %p", i, id, e, wants[i][id])
					}
				})
				if seen != len(wants[i]) {
					t.Fatalf("table %d: %d entries, want %d", i, seen, len(wants[i]))
				}
				for id, e := range wants[i] {
					if tb.get(id) != e {
						t.Fatalf("table %d: get(%d) differs", i, id)
					}
				}
			}
		})
	}
	if chunkShift(10_000) != 4 || chunkShift(1_000_000) != 6 || chunkShift(1<<40) != maxChunkShift {
		t.Fatalf("chunk shifts %d, %d, %d", chunkShift(10_000), chunkShift(1_000_000), chunkShift(1<<40))
	}
}

// TestReplayItems_LogsProgress: a bundle going live replays the changes
// written since its build in batches, and a long replay says how far it
// is (every replayProgressEvery; every batch here), never for the last.
func TestReplayItems_LogsProgress(t *testing.T) {
	defer func(d time.Duration) { replayProgressEvery = d }(replayProgressEvery)
	replayProgressEvery = 0
	log := &memItems{}
	for i := range 10 {
		log.write(upsert(catalog.Item{ID: fmt.Sprintf("n%d", i), Title: "purple synthesizer", Available: true, CreatedAt: testItems()[0].CreatedAt}))
	}
	var out bytes.Buffer
	e, err := New(Config{Candidates: 50, RankTimeout: time.Second, RecentDecay: 0.8, MaxRecent: 20, QueryCacheSize: 100,
		Live: LiveConfig{RebuildShare: 0.2, ReplayBatch: 3}},
		Deps{Items: log, Rules: compileRules(t), Logger: slog.New(slog.NewJSONHandler(&out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.publishLive(context.Background(), liveGen(t, "v1")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r struct {
			Msg         string
			Offset, To  int64
			DonePercent int64 `json:"done_percent"`
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Msg == "replaying the items topic" {
			got = append(got, fmt.Sprintf("%d/%d %d%%", r.Offset, r.To, r.DonePercent))
		}
	}
	if want := []string{"3/10 30%", "6/10 60%", "9/10 90%"}; !slices.Equal(got, want) {
		t.Fatalf("progress lines %q, want %q; log:\n%s", got, want, out.String())
	}
	if it, ok := e.Item("n9"); !ok || it.Item.Title != "purple synthesizer" {
		t.Fatalf("the last change was not applied: %+v %v", it, ok)
	}
}
