package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/internal/realtime"
)

// TestCounterCache checks a slot's round trip, its freshness bound, the
// decay to the request's time, items without a slot and the zero time.
func TestCounterCache(t *testing.T) {
	c := newCounterCache(4, time.Second, time.Hour)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	c.store(1, realtime.Stats{Impressions: 8, Clicks: 2, At: t0}, t0)
	c.store(2, realtime.Stats{}, t0) // never counted: the zero time
	hits := []candidate{{id: 0}, {id: 1}, {id: 2}, {id: 9}}
	out := make([]realtime.Stats, len(hits))
	miss := c.lookup(hits, t0.Add(time.Hour), t0.Add(500*time.Millisecond), out, nil)
	if len(miss) != 2 || miss[0] != 0 || miss[1] != 3 {
		t.Fatalf("misses %v, want [0 3] (an empty slot, an item past the catalog)", miss)
	}
	if got := out[1]; got.Impressions != 4 || got.Clicks != 1 || !got.At.Equal(t0.Add(time.Hour)) {
		t.Errorf("item 1 an hour later: %+v, want 4 and 1 at %v", got, t0.Add(time.Hour))
	}
	if got := out[2]; got.Impressions != 0 || got.Clicks != 0 {
		t.Errorf("item 2: %+v, want zero counts", got)
	}
	if miss := c.lookup(hits[1:2], t0, t0.Add(time.Second), out, nil); len(miss) != 1 {
		t.Errorf("an entry read a ttl ago was served")
	}
}

// TestCounterCache_Concurrent checks under -race that concurrent stores and
// lookups of one item never see a mix of two stores' counts.
func TestCounterCache_Concurrent(t *testing.T) {
	c := newCounterCache(1, time.Hour, 0)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				n := float64(w*10000 + i)
				c.store(0, realtime.Stats{Impressions: n, Clicks: 2 * n, At: t0}, t0)
			}
		})
	}
	hits := []candidate{{id: 0}}
	out := make([]realtime.Stats, 1)
	for range 20000 {
		if miss := c.lookup(hits, t0, t0, out, nil); len(miss) == 0 && out[0].Clicks != 2*out[0].Impressions {
			t.Fatalf("torn read: %+v", out[0])
		}
	}
	wg.Wait()
}
