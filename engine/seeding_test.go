package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeSeeder is a store that can lose its rows and be down.
type fakeSeeder struct {
	mu     sync.Mutex
	ready  map[string]bool
	down   bool
	writes int
}

func (f *fakeSeeder) Ready(_ context.Context, v string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return false, errors.New("connection refused")
	}
	return f.ready[v], nil
}

func (f *fakeSeeder) WriteItems(context.Context, string, []string, [][]float32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("connection refused")
	}
	f.writes++
	return nil
}

func (f *fakeSeeder) MarkReady(_ context.Context, v string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("connection refused")
	}
	f.ready[v] = true
	return nil
}

func (f *fakeSeeder) lose() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready = map[string]bool{}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestEngine_RunReseeds(t *testing.T) {
	items := testItems()
	seeder := &fakeSeeder{ready: map[string]bool{}, down: true}
	store := storeFor(items)
	e, err := New(Config{Candidates: 50, RankTimeout: time.Second, RecentDecay: 0.8, MaxRecent: 20, SeedCheck: 5 * time.Millisecond},
		Deps{Features: store, Seeder: seeder})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := newGen(t, "v1", items, &fakeScorer{weights: []float32{1, 0}})
	g.unseeded.Store(true) // as Load leaves it when the store was down
	for _, it := range items {
		g.itemRows = append(g.itemRows, store.rows[it.ID]...)
	}
	e.publish(g)
	if err := e.FeaturesReady(context.Background()); !errors.Is(err, ErrFeaturesUnseeded) {
		t.Fatalf("FeaturesReady with the store down = %v, want ErrFeaturesUnseeded", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	seeder.mu.Lock()
	seeder.down = false
	seeder.mu.Unlock()
	waitFor(t, "the seed once the store answers", func() bool { return e.FeaturesReady(ctx) == nil })

	// The store loses the rows: a request that finds them missing is
	// flagged and has Run write them again.
	seeder.lose()
	rows := store.rows
	store.rows = nil
	res, err := e.Search(ctx, SearchRequest{Query: "guitar", K: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Degraded, "features") {
		t.Errorf("rows missing from the store, degraded %v; want features", res.Degraded)
	}
	store.rows = rows
	waitFor(t, "the re-seed", func() bool {
		seeder.mu.Lock()
		defer seeder.mu.Unlock()
		return seeder.writes >= 2 && seeder.ready["v1"]
	})
}
