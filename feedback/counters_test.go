package feedback

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

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

func TestCounters_Run(t *testing.T) {
	for name, addr := range redisServers(t) {
		t.Run(name, func(t *testing.T) {
			b := startTestBroker(t, "")
			cfg := testConfig(b)
			p := newTestProducer(t, cfg, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()

			evs := testEvents(30) // 10 impressions of items a and b, 10 clicks, 10 purchases
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
			ccfg := CountersConfig{Group: "g-" + name, KeyPrefix: "t"}
			c, err := NewCounters(cfg, ccfg, rdb, nil, reg)
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
			if v := gatheredValue(t, reg, "recsys_feedback_consumer_lag", map[string]string{"group": ccfg.Group}); v != 0 {
				t.Errorf("lag after catching up = %v", v)
			}

			// A restarted updater resumes from the committed offsets: only
			// the new events are read.
			late := testEvents(31)[30]
			late.EventID = "late"
			if err := p.Publish(ctx, late); err != nil {
				t.Fatal(err)
			}
			c2, err := NewCounters(cfg, ccfg, rdb, nil, nil)
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

func runCounters(t *testing.T, c *Counters) func() {
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
func waitCounted(t *testing.T, c *Counters, n int64) {
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

func TestCountersConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		cfg  CountersConfig
		ok   bool
	}{
		{"zero", CountersConfig{}, true},
		{"set", CountersConfig{Group: "g", KeyPrefix: "p", DedupeWindow: time.Hour}, true},
		{"negative window", CountersConfig{DedupeWindow: -1}, false},
		{"sub-second window", CountersConfig{DedupeWindow: time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
