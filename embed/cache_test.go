package embed

import (
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func newCache(t *testing.T, size int, reg prometheus.Registerer) *Cache {
	t.Helper()
	c, err := NewCache(CacheConfig{Size: size}, reg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCacheConfig_Validate(t *testing.T) {
	if err := (CacheConfig{Size: 0}).Validate(); err == nil || err.Error() != "size: must be > 0" {
		t.Fatalf("err = %v", err)
	}
	if err := (CacheConfig{Size: 1}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCache_Get(t *testing.T) {
	t.Run("evicts the least recently used", func(t *testing.T) {
		c := newCache(t, 2, nil)
		c.Put("a", []float32{1})
		c.Put("b", []float32{2})
		if _, ok := c.Get("a"); !ok { // a is now more recent than b
			t.Fatal("a missing")
		}
		c.Put("c", []float32{3})
		if _, ok := c.Get("b"); ok {
			t.Error("b should have been evicted")
		}
		for _, k := range []string{"a", "c"} {
			if _, ok := c.Get(k); !ok {
				t.Errorf("%s evicted, want kept", k)
			}
		}
		if c.Len() != 2 {
			t.Errorf("Len = %d, want 2", c.Len())
		}
	})
	t.Run("put on an existing key updates and refreshes it", func(t *testing.T) {
		c := newCache(t, 2, nil)
		c.Put("a", []float32{1})
		c.Put("b", []float32{2})
		c.Put("a", []float32{9})
		c.Put("c", []float32{3})
		if v, ok := c.Get("a"); !ok || v[0] != 9 {
			t.Errorf("a = %v, %v; want [9], true", v, ok)
		}
		if _, ok := c.Get("b"); ok {
			t.Error("b should have been evicted")
		}
	})
	t.Run("stays within size", func(t *testing.T) {
		c := newCache(t, 10, nil)
		for i := 0; i < 100; i++ {
			c.Put(fmt.Sprint(i), []float32{float32(i)})
		}
		if c.Len() != 10 {
			t.Fatalf("Len = %d, want 10", c.Len())
		}
		for i := 90; i < 100; i++ {
			if v, ok := c.Get(fmt.Sprint(i)); !ok || v[0] != float32(i) {
				t.Errorf("recent key %d: %v, %v", i, v, ok)
			}
		}
	})
}

// counts reads the cache counter from a registry by result label.
func counts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "recsys_embed_cache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

func TestCache_Metrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newCache(t, 4, reg)
	c.Put("q", []float32{1})
	c.Get("q")
	c.Get("q")
	c.Get("other")
	if got := counts(t, reg); got["hit"] != 2 || got["miss"] != 1 {
		t.Fatalf("counters = %v, want hit 2 miss 1", got)
	}

	t.Run("a second cache on the same registry shares the series", func(t *testing.T) {
		c2 := newCache(t, 4, reg)
		c2.Get("q") // a miss: the new cache is empty
		if got := counts(t, reg); got["hit"] != 2 || got["miss"] != 2 {
			t.Fatalf("counters = %v, want hit 2 miss 2", got)
		}
	})
}

func TestCache_Concurrent(t *testing.T) {
	c := newCache(t, 16, prometheus.NewRegistry())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				k := fmt.Sprint((g*7 + i) % 40)
				if v, ok := c.Get(k); ok && fmt.Sprint(v[0]) != k {
					t.Errorf("key %s holds %v", k, v)
					return
				}
				c.Put(k, []float32{float32((g*7 + i) % 40)})
			}
		}(g)
	}
	wg.Wait()
	if c.Len() > 16 {
		t.Fatalf("Len = %d exceeds size 16", c.Len())
	}
}
