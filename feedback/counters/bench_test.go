package counters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/redisd"
)

// realRedisClient is a client to a fresh redis-server, or a skip.
func realRedisClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	p, err := redisd.Exec(context.Background())
	if err != nil {
		if errors.Is(err, redisd.ErrNoRedisServer) && os.Getenv("CI") == "" {
			tb.Skipf("real redis-server needed: %v", err)
		}
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	c := redis.NewClient(&redis.Options{Addr: p.Addr()})
	tb.Cleanup(func() { c.Close() })
	return c
}

// records makes n event records over users and items: every fourth an
// impression of ten items, the rest clicks, each with its own id and
// offset. item picks the item of a record's i-th slot.
func records(n, users int, item func(i, slot int) string) []*kgo.Record {
	return recordsFrom(0, n, users, item)
}

// recordsFrom is records numbered from first on (ids and offsets).
func recordsFrom(first, n, users int, item func(i, slot int) string) []*kgo.Record {
	t0 := time.Now().UTC().Add(-time.Hour)
	out := make([]*kgo.Record, n)
	for j := range out {
		i := first + j
		user := fmt.Sprintf("u%d", i%users)
		ev := feedback.Event{EventID: fmt.Sprintf("e%09d", i), SchemaVersion: feedback.SchemaVersion,
			Timestamp: t0.Add(time.Duration(i) * time.Microsecond), UserID: user}
		if i%4 == 0 {
			ev.Type, ev.Surface = feedback.TypeImpression, feedback.SurfaceSearch
			for s := range 10 {
				ev.Items = append(ev.Items, feedback.ImpressionItem{ItemID: item(i, s), Position: s})
			}
		} else {
			ev.Type, ev.ItemID = feedback.TypeClick, item(i, 0)
		}
		b, _ := json.Marshal(ev)
		out[j] = &kgo.Record{Key: []byte(user), Value: b, Partition: int32(i % 3), Offset: int64(i)}
	}
	return out
}

// BenchmarkUpdater_Apply is issue 11's must-show 5 (throughput): the
// updater's Redis work per event against a real redis-server, in the
// batches Run polls (records already fetched from Kafka).
func BenchmarkUpdater_Apply(b *testing.B) {
	rdb := realRedisClient(b)
	c, err := New(eventlog.Config{Brokers: []string{"127.0.0.1:1"}}, Config{KeyPrefix: "b"}, rdb, Options{})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 5000
	rng := rand.New(rand.NewPCG(1, 2))
	recs := records(max(b.N, batch), 10_000, func(int, int) string { return fmt.Sprintf("i%d", rng.IntN(100_000)) })
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for start := 0; start < b.N; start += batch {
		if _, err := c.apply(ctx, recs[start:min(start+batch, b.N)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestUpdater_KeysBoundedByCatalog is issue 11's must-show 5 (bounds):
// a million events naming random item ids (a client inventing them) leave
// Redis with keys for catalog items, users and the counted events' dedupe
// marks only; the rest go to the dead-letter topic.
func TestUpdater_KeysBoundedByCatalog(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 20_000 // the same bound, at a fiftieth of the events
	}
	rdb := realRedisClient(t)
	const catalog, users = 1000, 1000
	known := func(id string) bool {
		var k int
		_, err := fmt.Sscanf(id, "i%d", &k)
		return err == nil && k < catalog
	}
	var dead int
	c, err := New(eventlog.Config{Brokers: []string{"127.0.0.1:1"}}, Config{KeyPrefix: "k"}, rdb, Options{
		Known: known, DeadLetters: func(_ context.Context, d []eventlog.DeadLetter) error { dead += len(d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	start := time.Now()
	const step = 50_000
	for from := 0; from < n; from += step {
		recs := recordsFrom(from, min(step, n-from), users, func(int, int) string { return fmt.Sprintf("i%d", rng.IntN(10_000_000)) })
		if _, err := c.apply(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	keys, err := rdb.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	counted, _ := c.Stats()
	// Per catalog item one decayed-counts key; per user a history and its
	// offset; per counted event its dedupe mark (expiring after the window).
	bound := int64(catalog + 2*users + counted)
	if keys > bound {
		t.Errorf("%d keys after %d events with random item ids; the catalog bounds them at %d", keys, n, bound)
	}
	if dead+int(counted) != n {
		t.Errorf("%d dead-lettered + %d counted of %d events", dead, counted, n)
	}
	t.Logf("%d events with random item ids in %v (%.0f events/s): %d counted, %d dead-lettered as unknown, %d Redis keys (bound %d)",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), counted, dead, keys, bound)
}
