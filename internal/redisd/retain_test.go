package redisd

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkServer_DedupeKeyBytes reports the live heap each deduplication
// key (SET key 1 NX EX, as the counters consumer writes one per event)
// keeps in the embedded server: the key, miniredis's maps, the deadline
// (562 bytes while a key held the buffer its command was read into, 386
// since; `-benchtime 1x`).
func BenchmarkServer_DedupeKeyBytes(b *testing.B) {
	s, err := Start("")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	ctx := context.Background()
	const n = 50000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for it := range b.N {
		for i := 0; i < n; i += 500 {
			p := c.Pipeline()
			for j := i; j < i+500; j++ {
				p.SetNX(ctx, fmt.Sprintf("recsys:rt:seen:%06d-%030d", it, j), "1", 24*time.Hour)
			}
			if _, err := p.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := s.mr.DB(0).Keys(); len(got) != n*b.N {
		b.Fatalf("%d keys stored, want %d", len(got), n*b.N)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n*b.N), "B/key")
}
