package counters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/eventtest"
	"github.com/recsys-dev/recsys/internal/realtime"
	"github.com/recsys-dev/recsys/internal/redisd"
)

// redisServers returns the Redis implementations the counters contract runs
// against, as client factories: a real redis-server and a real three-master
// Redis Cluster (skipped when redis-server is not installed), and the
// in-process server running the scripts as Lua and as their native Go
// equivalents (what serve runs). A factory's client sees an empty database.
func redisServers(t *testing.T) map[string]func(t *testing.T) redis.UniversalClient {
	t.Helper()
	out := map[string]func(t *testing.T) redis.UniversalClient{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	single := func(addr string) func(t *testing.T) redis.UniversalClient {
		return func(t *testing.T) redis.UniversalClient {
			c := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { c.Close() })
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	if p, err := redisd.Exec(ctx); err == nil {
		t.Cleanup(p.Close)
		out["redis-server"] = single(p.Addr())
		cl, err := redisd.ExecCluster(ctx, 3)
		if err != nil {
			t.Fatalf("start a redis cluster: %v", err)
		}
		t.Cleanup(cl.Close)
		out["redis-cluster"] = func(t *testing.T) redis.UniversalClient {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
			t.Cleanup(func() { c.Close() })
			err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error { return m.FlushAll(ctx).Err() })
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	} else if !errors.Is(err, redisd.ErrNoRedisServer) {
		t.Fatalf("start redis-server: %v", err)
	} else {
		t.Logf("redis-server not installed, running on the in-process server only: %v", err)
	}
	lua, native := startInProcess(t, false), startInProcess(t, true)
	out["in-process-lua"] = single(lua.Addr())
	out["in-process"] = single(native.Addr())
	return out
}

// startInProcess starts the in-process server, with the updater's scripts
// native when native is set.
func startInProcess(t *testing.T, native bool) *redisd.Server {
	t.Helper()
	s, err := redisd.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if native {
		for src, fn := range NativeScripts() {
			s.Native(src, fn)
		}
	}
	return s
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
	for name, newClient := range redisServers(t) {
		t.Run(name, func(t *testing.T) {
			cfg, p := startBroker(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rdb := newClient(t)

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
			// Fetches the broker may hold for more events (the served
			// default); TestUpdater_SlowRedisShrinksChunks runs without.
			ccfg := Config{Group: "g-" + name, KeyPrefix: "t", BatchWait: 50 * time.Millisecond}
			c, err := New(cfg, ccfg, rdb, Options{Registerer: reg})
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
			decayed := func(item string) realtime.Stats {
				t.Helper()
				v, err := rdb.Get(ctx, realtime.ItemKey("t", item)).Result()
				st, ok := realtime.Parse(v)
				if err != nil || !ok {
					t.Fatalf("%s: %q, %v", item, v, err)
				}
				return st
			}
			// The duplicates above count once: 10 impressions each of a and b.
			for _, item := range []string{"a", "b"} {
				if st := decayed(item); math.Abs(st.Impressions-10) > 1e-3 {
					t.Errorf("%s: %v impressions, want 10", item, st.Impressions)
				}
			}
			if st := decayed("item-1"); math.Abs(st.Clicks-1) > 1e-9 {
				t.Errorf("item-1: %v clicks, want 1", st.Clicks)
			}
			if hist, _ := rdb.LRange(ctx, realtime.UserKey("t", "u2"), 0, -1).Result(); !slices.Contains(hist, "item-2") {
				t.Errorf("u2 history %v lacks the purchased item-2", hist)
			}
			// Every key the updater writes expires.
			for _, pattern := range []string{"t:*"} {
				keys, err := rdb.Keys(ctx, pattern).Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					if ttl, _ := rdb.PTTL(ctx, k).Result(); ttl <= 0 {
						t.Errorf("key %s has no TTL (%v)", k, ttl)
					}
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
			c2, err := New(cfg, ccfg, rdb, Options{})
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
		{"late window", Config{DedupeWindow: time.Minute, LateWindow: time.Hour}, true},
		{"late window under the window", Config{DedupeWindow: time.Hour, LateWindow: time.Minute}, false},
		{"sub-second late window", Config{LateWindow: time.Millisecond}, false},
		{"sub-second window", Config{DedupeWindow: time.Millisecond}, false},
		{"sub-second half-life", Config{HalfLife: time.Millisecond}, false},
		{"history too long", Config{HistoryLength: 1001}, false},
		{"negative history", Config{HistoryLength: -1}, false},
		{"history ttl under a minute", Config{HistoryTTL: time.Second}, false},
		{"batch wait", Config{BatchWait: 50 * time.Millisecond}, true},
		{"negative batch wait", Config{BatchWait: -1}, false},
		{"batch wait over 5s", Config{BatchWait: 6 * time.Second}, false},
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
	for name, newClient := range redisServers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rdb := newClient(t)
			const h = time.Hour
			c, err := New(eventlog.Config{Brokers: []string{"127.0.0.1:1"}}, Config{KeyPrefix: "rt", HalfLife: h, HistoryLength: 3}, rdb, Options{})
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
				recs = append(recs, &kgo.Record{Value: b, Offset: int64(len(recs))})
			}
			if _, err := c.apply(ctx, recs); err != nil {
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

// click is a valid click record of user on item at (partition 0, offset).
func click(t testing.TB, id, user, item string, offset int64) *kgo.Record {
	t.Helper()
	pos := 0
	ev := feedback.Event{EventID: id, Type: feedback.TypeClick, SchemaVersion: feedback.SchemaVersion,
		Timestamp: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), UserID: user, ItemID: item, Position: &pos}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Value: b, Key: []byte(user), Offset: offset}
}

func TestUpdater_ExactlyOnce(t *testing.T) {
	for name, newClient := range redisServers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rdb := newClient(t)
			c, err := New(eventlog.Config{Brokers: []string{"127.0.0.1:1"}}, Config{KeyPrefix: "x"}, rdb, Options{})
			if err != nil {
				t.Fatal(err)
			}
			clicks := func() float64 {
				v, _ := rdb.Get(ctx, realtime.ItemKey("x", "i1")).Result()
				st, _ := realtime.Parse(v)
				return st.Clicks
			}
			batch := []*kgo.Record{click(t, "e1", "u1", "i1", 10), click(t, "e2", "u1", "i1", 11)}
			if _, err := c.apply(ctx, batch); err != nil {
				t.Fatal(err)
			}
			// The same records read again (a batch re-read after a crash
			// before the commit): nothing changes.
			if _, err := c.apply(ctx, batch); err != nil {
				t.Fatal(err)
			}
			// A crash after e3's mark was set but before its keys were
			// written: the re-read completes it, once.
			if err := rdb.Set(ctx, realtime.SeenKey("x", "e3"), "0:12", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			e3 := []*kgo.Record{click(t, "e3", "u1", "i1", 12)}
			for range 2 {
				if _, err := c.apply(ctx, e3); err != nil {
					t.Fatal(err)
				}
			}
			// A duplicate record of e1 (a client's retry) at a new offset.
			if _, err := c.apply(ctx, []*kgo.Record{click(t, "e1", "u1", "i1", 13)}); err != nil {
				t.Fatal(err)
			}
			if got := clicks(); math.Abs(got-3) > 1e-9 {
				t.Errorf("clicks = %v, want 3 (e1, e2, e3 once each)", got)
			}
			if hist, _ := rdb.LRange(ctx, realtime.UserKey("x", "u1"), 0, -1).Result(); len(hist) != 3 {
				t.Errorf("u1 history %v, want 3 entries", hist)
			}
			if counted, dups := c.Stats(); counted != 3 || dups != 1 {
				t.Errorf("counted %d, duplicates %d; want 3 (e1, e2, e3 completed) and 1 (e1's retry)", counted, dups)
			}
		})
	}
}

// TestUpdater_MarkWindows checks that an event applied on time keeps its
// dedupe mark for dedupe_window and a late one (spooled through an
// outage) for late_dedupe_window, counted, and that both still catch a
// duplicate.
func TestUpdater_MarkWindows(t *testing.T) {
	for name, newClient := range redisServers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rdb := newClient(t)
			c, err := New(eventlog.Config{Brokers: []string{"127.0.0.1:1"}},
				Config{KeyPrefix: "w", DedupeWindow: 10 * time.Minute, LateWindow: 24 * time.Hour}, rdb, Options{})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) // click's timestamp
			c.now = func() time.Time { return at.Add(time.Minute) }
			if _, err := c.apply(ctx, []*kgo.Record{click(t, "fresh", "u1", "i1", 1)}); err != nil {
				t.Fatal(err)
			}
			c.now = func() time.Time { return at.Add(11 * time.Minute) }
			if _, err := c.apply(ctx, []*kgo.Record{click(t, "late", "u1", "i1", 2)}); err != nil {
				t.Fatal(err)
			}
			fresh, _ := rdb.PTTL(ctx, realtime.SeenKey("w", "fresh")).Result()
			late, _ := rdb.PTTL(ctx, realtime.SeenKey("w", "late")).Result()
			if fresh <= 9*time.Minute || fresh > 10*time.Minute {
				t.Errorf("on-time mark TTL %v, want dedupe_window (10m)", fresh)
			}
			if late <= 23*time.Hour || late > 24*time.Hour {
				t.Errorf("late mark TTL %v, want late_dedupe_window (24h)", late)
			}
			if n := testutil.ToFloat64(c.lateMarks.WithLabelValues(c.ccfg.Group)); n != 1 {
				t.Errorf("late marks counted %v, want 1", n)
			}
			// Copies of both at new offsets are duplicates.
			if _, err := c.apply(ctx, []*kgo.Record{click(t, "fresh", "u1", "i1", 3), click(t, "late", "u1", "i1", 4)}); err != nil {
				t.Fatal(err)
			}
			if counted, dups := c.Stats(); counted != 2 || dups != 2 {
				t.Errorf("counted %d, duplicates %d; want 2 and 2", counted, dups)
			}
		})
	}
}

func TestUpdater_UnknownItemsAndPoison(t *testing.T) {
	for name, native := range map[string]bool{"lua": false, "native": true} {
		t.Run(name, func(t *testing.T) {
			s := startInProcess(t, native)
			ctx := context.Background()
			rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
			defer rdb.Close()
			var dead []eventlog.DeadLetter
			c, err := New(eventlog.Config{Brokers: []string{"127.0.0.1:1"}}, Config{KeyPrefix: "k"}, rdb, Options{
				Known: func(id string) bool { return id == "known" || id == "listy" },
				DeadLetters: func(_ context.Context, d []eventlog.DeadLetter) error {
					dead = append(dead, d...)
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.apply(ctx, []*kgo.Record{click(t, "a", "u", "known", 1), click(t, "b", "u", "random-123", 2)}); err != nil {
				t.Fatal(err)
			}
			if len(dead) != 1 || !strings.HasPrefix(dead[0].Reason, ReasonUnknownItem) {
				t.Fatalf("dead letters %+v, want the unknown item's", dead)
			}
			if n, _ := rdb.Exists(ctx, realtime.ItemKey("k", "random-123"), realtime.SeenKey("k", "b")).Result(); n != 0 {
				t.Errorf("an unknown item left %d keys", n)
			}
			// A key of the wrong type makes its record fail while Redis answers:
			// poison, dead-lettered one by one, the rest applied.
			if err := rdb.LPush(ctx, realtime.ItemKey("k", "listy"), "x").Err(); err != nil {
				t.Fatal(err)
			}
			dead = nil
			batch := []*kgo.Record{click(t, "c", "u", "listy", 3), click(t, "d", "u", "known", 4)}
			_, err = c.apply(ctx, batch)
			if err == nil {
				t.Fatal("a batch with a poison record applied cleanly")
			}
			if err := c.isolate(ctx, batch, err); err != nil {
				t.Fatal(err)
			}
			if len(dead) != 1 || !strings.Contains(dead[0].Payload, `"listy"`) || !strings.HasPrefix(dead[0].Reason, "poison") {
				t.Fatalf("dead letters %+v, want the poison record", dead)
			}
			v, _ := rdb.Get(ctx, realtime.ItemKey("k", "known")).Result()
			if st, _ := realtime.Parse(v); math.Abs(st.Clicks-2) > 1e-9 {
				t.Errorf("known: %v clicks, want 2 (a and d)", st.Clicks)
			}
		})
	}
}

// TestUpdater_SlowRedisShrinksChunks: a Redis too slow for the updater's
// pipelines (the embedded server after an overload) times them out. That
// is not poison: nothing is dead-lettered; the updater backs off, sends
// smaller pipelines, and counts every event exactly once.
func TestUpdater_SlowRedisShrinksChunks(t *testing.T) {
	cfg, p := startBroker(t)
	ctx := context.Background()
	s, err := redisd.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for src, fn := range NativeScripts() {
		s.Native(src, func(kv redisd.KV, keys, args []string) (any, error) {
			// Every script call is slow (a spin: sleeps this short
			// overshoot by a millisecond).
			for start := time.Now(); time.Since(start) < 100*time.Microsecond; {
			}
			return fn(kv, keys, args)
		})
	}
	// 400 impressions of ten distinct items each: 2,560 item scripts in a
	// full chunk, a quarter of a second, against a 100 ms read timeout.
	const n = 400
	at := time.Now().UTC().Truncate(time.Millisecond)
	for i := range n {
		ev := feedback.Event{EventID: fmt.Sprintf("imp-%d", i), Type: feedback.TypeImpression, SchemaVersion: feedback.SchemaVersion,
			Timestamp: at, UserID: "u", RequestID: fmt.Sprintf("r%d", i), Surface: feedback.SurfaceSearch}
		for k := range 10 {
			ev.Items = append(ev.Items, feedback.ImpressionItem{ItemID: fmt.Sprintf("i%d-%d", i, k), Position: k})
		}
		if err := p.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	var dead atomic.Int64
	reg := prometheus.NewRegistry()
	c, err := New(cfg, Config{Group: "slow", KeyPrefix: "t"}, rdb, Options{Registerer: reg,
		DeadLetters: func(_ context.Context, d []eventlog.DeadLetter) error { dead.Add(int64(len(d))); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	stop := runCounters(t, c)
	// A timed-out pipeline still runs to its end on the server, so its
	// events are found applied when re-read: counted or re-read, every
	// event is in Redis once.
	consumed := func(result string) float64 {
		return eventtest.Gathered(t, reg, "recsys_feedback_consumed_total", map[string]string{"group": "slow", "result": result})
	}
	deadline := time.Now().Add(60 * time.Second)
	var maxLag float64 // the lag gauge while the batch is retried
	for consumed("counted")+consumed("reread") < n {
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: %v counted, %v re-read of %d", consumed("counted"), consumed("reread"), n)
		}
		maxLag = max(maxLag, eventtest.Gathered(t, reg, "recsys_feedback_consumer_lag", map[string]string{"group": "slow"}))
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	// Each retry pauses at least retryBase, several times the sampling
	// above: a gauge that counted the unapplied batch was seen above 0.
	if maxLag == 0 {
		t.Errorf("the consumer lag read 0 throughout while a batch of %d events was retried", n)
	}
	if lag := eventtest.Gathered(t, reg, "recsys_feedback_consumer_lag", map[string]string{"group": "slow"}); lag != 0 {
		t.Errorf("lag %v after every event was applied, want 0", lag)
	}
	if d := dead.Load(); d != 0 {
		t.Errorf("%d records dead-lettered: timeouts taken for poison", d)
	}
	retries := eventtest.Gathered(t, reg, "recsys_counters_batch_retries_total", nil)
	if retries == 0 || c.chunk.Load() >= maxChunk {
		t.Errorf("%v retries, chunk %d: the slow server did not time a pipeline out, so the test tested nothing", retries, c.chunk.Load())
	}
	for i := range n {
		v, err := rdb.Get(ctx, realtime.ItemKey("t", fmt.Sprintf("i%d-3", i))).Result()
		if st, ok := realtime.Parse(v); err != nil || !ok || math.Abs(st.Impressions-1) > 1e-9 {
			t.Fatalf("item i%d-3: %q (%v), want one impression", i, v, err)
		}
	}
	t.Logf("%v retries; chunk down to %d records", retries, c.chunk.Load())
}
