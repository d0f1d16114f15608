package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/internal/redisd"
	"github.com/recsys-dev/recsys/world"
)

// The request path's allocation budget (issue 12): per search and per
// recommendation, in the serving process, counting what the request starts
// in the background (its impression event produced, consumed by the counter
// updater and written to Redis).
const (
	budgetAllocs = 1000
	budgetBytes  = 100 << 10
)

// servingEngine starts the whole server as serve does on a world of items
// (a real redis-server when installed, the in-process one otherwise) and
// returns its engine, which the HTTP handlers call.
func servingEngine(tb testing.TB, items int) (*engine.Engine, *world.World, world.Config) {
	tb.Helper()
	dir := tb.TempDir()
	addr := ""
	if p, err := redisd.Exec(context.Background()); err == nil {
		tb.Cleanup(p.Close)
		addr = p.Addr()
	} else if !errors.Is(err, redisd.ErrNoRedisServer) {
		tb.Fatal(err)
	}
	cfg := testConfig(tb, dir, addr)
	wcfg := world.Config{Items: items, Users: 200, Seed: 1}
	if err := world.Write(filepath.Join(dir, "world"), wcfg, io.Discard); err != nil {
		tb.Fatal(err)
	}
	buildBundle(tb, cfg)
	s, _ := startServer(tb, cfg)
	w, err := world.New(wcfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s.Engine, w, wcfg
}

// benchRequests runs searches or recommendations of the world's users.
func benchRequests(e *engine.Engine, w *world.World, wcfg world.Config, surface string) func(b *testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			u := w.User(i % wcfg.Users)
			user := engine.User{ID: u.ID, Age: u.Age}
			var err error
			if surface == "search" {
				_, err = e.Search(ctx, engine.SearchRequest{RequestID: fmt.Sprint(i), Query: w.Query(&u, rng), K: 10, User: user})
			} else {
				recent := []string{world.ItemID(rng.IntN(wcfg.Items)), world.ItemID(rng.IntN(wcfg.Items))}
				_, err = e.Recommend(ctx, engine.RecommendRequest{RequestID: fmt.Sprint(i), User: user, RecentItems: recent, K: 10})
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRequestPath reports allocations and bytes per request of the
// serving engine on a 10k-item world.
func BenchmarkRequestPath(b *testing.B) {
	e, w, wcfg := servingEngine(b, 10000)
	for _, surface := range []string{"search", "recommend"} {
		b.Run(surface, benchRequests(e, w, wcfg, surface))
	}
}

// TestRequestPath_AllocationBudget enforces the budget: a search or a
// recommendation allocates under 1,000 times and 100 KB.
func TestRequestPath_AllocationBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's allocations are not the product's")
	}
	e, w, wcfg := servingEngine(t, 2000)
	for _, surface := range []string{"search", "recommend"} {
		testing.Benchmark(benchRequests(e, w, wcfg, surface)) // warm the caches and pools
		r := testing.Benchmark(benchRequests(e, w, wcfg, surface))
		allocs, bytes := r.AllocsPerOp(), r.AllocedBytesPerOp()
		t.Logf("%s: %d allocations, %.1f KB per request (%d requests)", surface, allocs, float64(bytes)/1024, r.N)
		if allocs > budgetAllocs || bytes > budgetBytes {
			t.Errorf("%s: %d allocations and %d bytes per request; the budget is %d and %d", surface, allocs, bytes, budgetAllocs, budgetBytes)
		}
	}
}
