package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/feedback/eventlog"
)

// benchFeedbackEnv serves the API over TCP with a real sink (acks=all
// producer, spool configured but unused while the broker is up) on the
// embedded broker.
func benchFeedbackEnv(b *testing.B) string {
	b.Helper()
	br, err := eventlog.StartBroker(eventlog.BrokerConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	kcfg := eventlog.Config{Brokers: br.Addrs(), Topic: "bench.events", Partitions: 4}
	sink, stop := newFaultSink(b, kcfg, b.TempDir())
	b.Cleanup(stop)
	return newBenchEnv(b, sink)
}

// newBenchEnv starts the server on a free port and returns its base URL.
func newBenchEnv(b *testing.B, pub Publisher) string {
	srv, err := New(DefaultConfig(), Deps{Engine: &fakeEngine{}, Feedback: pub,
		Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

func post(b *testing.B, c *http.Client, url, body string, want int) {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Errorf("status %d, want %d", resp.StatusCode, want)
	}
}

// BenchmarkFeedback_Single is must-show 3 for POST /v1/feedback: one event
// per request, 32 concurrent clients, each answered after acks=all.
func BenchmarkFeedback_Single(b *testing.B) {
	base := benchFeedbackEnv(b)
	c := benchClient()
	var i atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // x GOMAXPROCS clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			post(b, c, base+"/v1/feedback", faultEvent(int(i.Add(1))), http.StatusAccepted)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFeedback_Batch is must-show 3 for POST /v1/feedback/batch:
// batches of 500 events, 4 concurrent clients per CPU.
func BenchmarkFeedback_Batch(b *testing.B) {
	const size = 500
	base := benchFeedbackEnv(b)
	c := benchClient()
	var i atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		parts := make([]string, size)
		for pb.Next() {
			for j := range parts {
				parts[j] = faultEvent(int(i.Add(1)))
			}
			post(b, c, base+"/v1/feedback/batch", `{"events":[`+strings.Join(parts, ",")+`]}`, http.StatusOK)
		}
	})
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkDecodeBatch(b *testing.B) {
	parts := make([]string, 500)
	for j := range parts {
		parts[j] = faultEvent(j)
	}
	body := []byte(`{"events":[` + strings.Join(parts, ",") + `]}`)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for range b.N {
		if _, _, _, err := decodeBatch(body, now, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(parts))/b.Elapsed().Seconds(), "events/s")
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"events":[` + faultEvent(1) + `]}`))
	f.Add([]byte(`{"events":[{"type":"like"},"x",3,null]}`))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`[`))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, dead, results, err := decodeBatch(body, now, 0)
		if err != nil {
			if evs != nil || dead != nil || results != nil {
				t.Fatal("results returned with an envelope error")
			}
			return
		}
		if len(evs)+len(dead) != len(results) {
			t.Fatalf("%d accepted + %d dead != %d results", len(evs), len(dead), len(results))
		}
		for _, ev := range evs {
			if ev.EventID == "" {
				t.Fatal("accepted event without an id")
			}
			if err := ev.Validate(now); err != nil {
				t.Fatalf("accepted an invalid event: %v", err)
			}
		}
		for _, d := range dead {
			if d.Reason == "" || d.Field == "" {
				t.Fatalf("dead letter without a reason: %+v", d)
			}
		}
	})
}
