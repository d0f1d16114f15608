package counters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/eventtest"
	"github.com/recsys-dev/recsys/internal/realtime"
	"github.com/recsys-dev/recsys/internal/redisd"
)

// redisServers returns the Redis implementations the counters contract runs
// against: a real redis-server (skipped when not installed) and the
// in-process server.
func redisServers(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p, err := redisd.Exec(ctx); err == nil {
		t.Cleanup(p.Close)
		out["redis-server"] = p.Addr()
	} else if !errors.Is(err, redisd.ErrNoRedisServer) {
		t.Fatalf("start redis-server: %v", err)
	} else {
		t.Logf("redis-server not installed, running on the in-process server only: %v", err)
	}
	s, err := redisd.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	out["in-process"] = s.Addr()
	return out
}

// startBroker starts an in-memory embedded broker for the test, and a
// producer whose topic exists.
func startBroker(t *testing.T) (eventlog.Config, *eventlog.Producer) {
	t.Helper()
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg := eventlog.Config{Brokers: b.Addrs(), Topic: "test.events", ClientID: "counters-test", ProduceTimeout: 10 * time.Second, Partitions: 3}
	p, err := eventlog.NewProducer(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.EnsureTopic(ctx); err != nil {
		t.Fatal(err)
	}
	return cfg, p
}

func TestUpdater_Run(t *testing.T) {
	for name, addr := range redisServers(t) {
		t.Run(name, func(t *testing.T) {
			cfg, p := startBroker(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()

			evs := eventtest.Events(30) // 10 impressions of items a and b, 10 clicks, 10 purchases
			for _, ev := range evs {
				if err := p.Publish(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			// Duplicates, as a client retry or a spool redelivery makes.
			for _, ev := range evs[:6] {
				if err := p.Publish(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			reg := prometheus.NewRegistry()
			ccfg := Config{Group: "g-" + name, KeyPrefix: "t"}
			c, err := New(cfg, ccfg, rdb, nil, reg)
			if err != nil {
				t.Fatal(err)
			}
			stop := runCounters(t, c)
			waitCounted(t, c, 30)
			stop()
			counted, dups := c.Stats()
			if counted != 30 || dups != 6 {
				t.Fatalf("counted %d, duplicates %d; want 30 and 6", counted, dups)
			}
			for key, want := range map[string]int64{"t:imp:a": 10, "t:imp:b": 10, "t:clk:item-1": 1, "t:buy:item-2": 1} {
				if got, err := rdb.Get(ctx, key).Int64(); err != nil || got != want {
					t.Errorf("%s = %d (%v), want %d", key, got, err, want)
				}
			}
			if v := eventtest.Gathered(t, reg, "recsys_feedback_consumer_lag", map[string]string{"group": ccfg.Group}); v != 0 {
				t.Errorf("lag after catching up = %v", v)
			}

			// A restarted updater resumes from the committed offsets: only
			// the new events are read.
			late := eventtest.Events(31)[30]
			late.EventID = "late"
			if err := p.Publish(ctx, late); err != nil {
				t.Fatal(err)
			}
			c2, err := New(cfg, ccfg, rdb, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			stop2 := runCounters(t, c2)
			waitCounted(t, c2, 1)
			stop2()
			if counted, dups := c2.Stats(); counted != 1 || dups != 0 {
				t.Fatalf("after restart: counted %d, duplicates %d; want 1 and 0 (offsets not committed?)", counted, dups)
			}
		})
	}
}

func runCounters(t *testing.T, c *Updater) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitCounted polls until c has counted n events; the deadline only turns
// a hang into a failure.
func waitCounted(t *testing.T, c *Updater, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if counted, _ := c.Stats(); counted >= n {
			return
		}
		if time.Now().After(deadline) {
			counted, _ := c.Stats()
			t.Fatalf("counted %d of %d events", counted, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"set", Config{Group: "g", KeyPrefix: "p", DedupeWindow: time.Hour}, true},
		{"negative window", Config{DedupeWindow: -1}, false},
		{"sub-second window", Config{DedupeWindow: time.Millisecond}, false},
		{"sub-second half-life", Config{HalfLife: time.Millisecond}, false},
		{"history too long", Config{HistoryLength: 1001}, false},
		{"negative history", Config{HistoryLength: -1}, false},
		{"history ttl under a minute", Config{HistoryTTL: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestCounters_RealtimeState checks the decayed item counts and the user
// histories the ranker's counter and user features read, on both servers.
func TestUpdater_RealtimeState(t *testing.T) {
	for name, addr := range redisServers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()
			const h = time.Hour
			c, err := New(eventlog.Config{Brokers: []string{"127.0.0.1:1"}}, Config{KeyPrefix: "rt", HalfLife: h, HistoryLength: 3}, rdb, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			n := 0
			ev := func(typ, user, item string, at time.Time) feedback.Event {
				n++
				e := feedback.Event{EventID: fmt.Sprintf("e%d", n), Type: typ, SchemaVersion: feedback.SchemaVersion, Timestamp: at, UserID: user, ItemID: item}
				if typ == feedback.TypeImpression {
					e.ItemID, e.Surface = "", feedback.SurfaceSearch
					e.Items = []feedback.ImpressionItem{{ItemID: item}, {ItemID: "other", Position: 1}}
				}
				return e
			}
			evs := []feedback.Event{
				ev(feedback.TypeImpression, "u1", "a", t0),
				ev(feedback.TypeImpression, "u1", "a", t0.Add(h)),  // decays the first to 0.5: 1.5
				ev(feedback.TypeImpression, "u2", "a", t0.Add(-h)), // late, older than the reference: adds 0.25
				ev(feedback.TypeClick, "u1", "a", t0.Add(h)),       // 1 click at the reference
				ev(feedback.TypeClick, "u1", "b", t0.Add(2*h)),     // b's own reference
				ev(feedback.TypePurchase, "u1", "c", t0.Add(2*h)),  // history only
				ev(feedback.TypeAddToCart, "u1", "d", t0.Add(3*h)), // history only; trims "a" off
				ev(feedback.TypeDwell, "u1", "e", t0.Add(3*h)),     // neither
			}
			dwell := int64(5)
			evs[len(evs)-1].DwellMS = &dwell
			recs := make([]*kgo.Record, 0, len(evs)+1)
			for _, e := range append(evs, evs[3]) { // the click again: a redelivery
				b, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, &kgo.Record{Value: b})
			}
			if err := c.apply(ctx, recs); err != nil {
				t.Fatal(err)
			}
			stats := func(item string) realtime.Stats {
				t.Helper()
				v, err := rdb.Get(ctx, realtime.ItemKey("rt", item)).Result()
				if err != nil {
					t.Fatalf("%s: %v", item, err)
				}
				s, ok := realtime.Parse(v)
				if !ok {
					t.Fatalf("%s: unparsable %q", item, v)
				}
				return s
			}
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
			if s := stats("a"); !near(s.Impressions, 1.75) || !near(s.Clicks, 1) || !s.At.Equal(t0.Add(h)) {
				t.Errorf("a = %+v, want 1.75 impressions, 1 click (not 2: the redelivery), at t0+1h", s)
			}
			if s := stats("b"); !near(s.Impressions, 0) || !near(s.Clicks, 1) || !s.At.Equal(t0.Add(2*h)) {
				t.Errorf("b = %+v, want 0 impressions, 1 click at t0+2h", s)
			}
			if s := stats("other"); !near(s.Impressions, 1.75) {
				t.Errorf("other = %+v, want 1.75 impressions", s)
			}
			if n, _ := rdb.Exists(ctx, realtime.ItemKey("rt", "c"), realtime.ItemKey("rt", "e")).Result(); n != 0 {
				t.Errorf("purchases and dwells must not write decayed counts; %d keys exist", n)
			}
			hist, err := rdb.LRange(ctx, realtime.UserKey("rt", "u1"), 0, -1).Result()
			if err != nil || !slices.Equal(hist, []string{"d", "c", "b"}) {
				t.Errorf("u1 history = %v (%v), want [d c b]: most recent first, trimmed to 3", hist, err)
			}
			if n, _ := rdb.Exists(ctx, realtime.UserKey("rt", "u2")).Result(); n != 0 {
				t.Error("an impression must not enter a user's history")
			}
			if ttl, _ := rdb.PTTL(ctx, realtime.ItemKey("rt", "a")).Result(); ttl <= 0 || ttl > 24*time.Hour {
				t.Errorf("decayed key TTL = %v, want max(10 half-lives, 1 day) = 24h", ttl)
			}
		})
	}
}
