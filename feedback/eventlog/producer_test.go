package eventlog

import (
	"bytes"
	"context"
	"errors"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/internal/eventtest"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestProducer_Publish(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	reg := prometheus.NewPedanticRegistry()
	p := newTestProducer(t, cfg, reg)
	ctx := context.Background()

	// Kafka timestamps have millisecond precision.
	start := time.Now().Truncate(time.Millisecond)
	want := testEvents(30)
	for _, ev := range want {
		if err := p.Publish(ctx, ev); err != nil {
			t.Fatalf("Publish %s: %v", ev.EventID, err)
		}
	}
	got, recs, stats := readAll(t, cfg)
	if stats.Records != len(want) || stats.Events != len(want) || stats.Invalid != 0 {
		t.Fatalf("stats = %+v, want %d valid records", stats, len(want))
	}

	t.Run("events intact", func(t *testing.T) {
		gotByID := byID(got)
		for _, w := range want {
			g, ok := gotByID[w.EventID]
			if !ok {
				t.Errorf("event %s missing", w.EventID)
				continue
			}
			if !eventtest.Equal(g, w) {
				t.Errorf("event %s changed:\n got %+v\nwant %+v", w.EventID, g, w)
			}
		}
	})
	t.Run("key, headers and timestamp", func(t *testing.T) {
		for i, r := range recs {
			if string(r.Key) != got[i].UserID {
				t.Errorf("record %d key %q, user %q", i, r.Key, got[i].UserID)
			}
			h := map[string]string{}
			for _, hd := range r.Headers {
				h[hd.Key] = string(hd.Value)
			}
			if h[HeaderSchemaVersion] != "1" || h[HeaderEventType] != got[i].Type {
				t.Errorf("record %d headers %v", i, h)
			}
			if r.Timestamp.Before(start) || r.Timestamp.After(time.Now()) {
				t.Errorf("record %d timestamp %v, want the produce time (after %v)", i, r.Timestamp, start)
			}
		}
	})
	t.Run("one partition per user, in order", func(t *testing.T) {
		partition := map[string]int32{}
		last := map[string]string{}
		for i, r := range recs {
			u := got[i].UserID
			if p, ok := partition[u]; ok && p != r.Partition {
				t.Errorf("user %s in partitions %d and %d", u, p, r.Partition)
			}
			partition[u] = r.Partition
			// feedback.Event ids were assigned in publish order.
			if got[i].EventID <= last[u] {
				t.Errorf("user %s: %s read after %s", u, got[i].EventID, last[u])
			}
			last[u] = got[i].EventID
		}
	})
	t.Run("metrics", func(t *testing.T) {
		for typ, n := range map[string]float64{feedback.TypeImpression: 10, feedback.TypeClick: 10, feedback.TypePurchase: 10} {
			if got := eventsCount(t, p, typ, "ok"); got != n {
				t.Errorf("events_total{type=%s,result=ok} = %v, want %v", typ, got, n)
			}
		}
		if n := gatheredValue(t, reg, "recsys_feedback_produce_seconds", map[string]string{"mode": "sync"}); n != 30 {
			t.Errorf("produce_seconds{mode=sync} count = %v, want 30", n)
		}
	})
}

func TestProducer_PublishAssignsID(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	p := newTestProducer(t, cfg, nil)
	ev := testEvents(2)[1]
	ev.EventID = ""
	if err := p.Publish(context.Background(), ev); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got, _, _ := readAll(t, cfg)
	if len(got) != 1 || len(got[0].EventID) != 36 {
		t.Fatalf("read %+v, want one event with a UUID", got)
	}
}

func TestProducer_PublishInvalid(t *testing.T) {
	b := startTestBroker(t, "")
	p := newTestProducer(t, testConfig(b), nil)
	ev := testEvents(2)[1]
	ev.ItemID = ""
	err := p.Publish(context.Background(), ev)
	var fe *feedback.FieldError
	if !errors.As(err, &fe) || fe.Field != "item_id" {
		t.Fatalf("Publish = %v, want a feedback.FieldError on item_id", err)
	}
	p.PublishAsync(feedback.Event{Type: "bogus"})
	if got := eventsCount(t, p, "click", "invalid"); got != 1 {
		t.Errorf("invalid clicks = %v, want 1", got)
	}
	if got := eventsCount(t, p, "unknown", "invalid"); got != 1 {
		t.Errorf("invalid unknown-type events = %v, want 1", got)
	}
}

func TestProducer_PublishAsync(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	p := newTestProducer(t, cfg, nil)

	want := testEvents(60)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(want); i += 4 {
				p.PublishAsync(want[i])
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	var ok float64
	for _, typ := range []string{feedback.TypeImpression, feedback.TypeClick, feedback.TypePurchase} {
		ok += eventsCount(t, p, typ, "ok")
	}
	if ok != float64(len(want)) {
		t.Errorf("acknowledged = %v, want %d", ok, len(want))
	}
	got, _, _ := readAll(t, cfg)
	gotByID := byID(got)
	for _, w := range want {
		if g, found := gotByID[w.EventID]; !found || !eventtest.Equal(g, w) {
			t.Errorf("event %s not read back intact", w.EventID)
		}
	}
}

func TestProducer_Close(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	p := newTestProducer(t, cfg, nil)
	evs := testEvents(10)
	for _, ev := range evs {
		p.PublishAsync(ev)
	}
	// Close must flush what PublishAsync buffered.
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got, _, _ := readAll(t, cfg); len(got) != len(evs) {
		t.Errorf("read %d events after Close, want %d", len(got), len(evs))
	}
	if err := p.Publish(context.Background(), evs[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	p.PublishAsync(evs[1])
	if got := eventsCount(t, p, evs[1].Type, "dropped"); got != 1 {
		t.Errorf("dropped after Close = %v, want 1", got)
	}
}

func TestProducer_EnsureTopic(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	cfg.ProduceTimeout = 2 * time.Second
	p, err := NewProducer(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	ev := testEvents(2)[1]

	// The embedded broker, like production clusters, does not create
	// topics on demand, so publishing before EnsureTopic fails.
	if err := p.Publish(ctx, ev); err == nil {
		t.Fatal("Publish to a missing topic succeeded")
	}
	for i := range 2 { // the second call finds the topic and is fine too
		if err := p.EnsureTopic(ctx); err != nil {
			t.Fatalf("EnsureTopic #%d: %v", i+1, err)
		}
	}
	if err := p.Publish(ctx, ev); err != nil {
		t.Fatalf("Publish after EnsureTopic: %v", err)
	}
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(cfg.Topic)
	req.Topics = append(req.Topics, mt)
	resp, err := req.RequestWith(ctx, p.cl)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Topics[0].Partitions); n != cfg.Partitions {
		t.Errorf("topic has %d partitions, want %d", n, cfg.Partitions)
	}
}

func TestProducer_Ping(t *testing.T) {
	b := startTestBroker(t, "")
	p, err := NewProducer(testConfig(b), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping with a running broker: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if err := p.Ping(ctx2); err == nil {
		t.Fatal("Ping succeeded after the broker stopped")
	}
}

func TestNewProducer(t *testing.T) {
	t.Run("invalid config names the key", func(t *testing.T) {
		_, err := NewProducer(Config{Brokers: []string{"nohost"}}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "brokers[0]") {
			t.Fatalf("NewProducer = %v", err)
		}
	})
	t.Run("metrics registered once per registry", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		cfg := Config{Brokers: []string{"127.0.0.1:1"}}
		p, err := NewProducer(cfg, nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, err := NewProducer(cfg, nil, reg); err == nil {
			t.Fatal("second producer on one registry registered duplicate metrics")
		}
	})
}

func BenchmarkProducer_Publish(b *testing.B) {
	br := startTestBroker(b, "")
	cfg := testConfig(br)
	p := newTestProducer(b, cfg, nil)
	evs := testEvents(64)
	ctx := context.Background()
	b.ReportAllocs()
	// Many concurrent callers, as in the API: batching across concurrent
	// requests is where the throughput of acknowledged writes comes from.
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := p.Publish(ctx, evs[i%len(evs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkProducer_PublishAsync(b *testing.B) {
	br := startTestBroker(b, "")
	cfg := testConfig(br)
	p := newTestProducer(b, cfg, nil)
	evs := testEvents(64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.PublishAsync(evs[i%len(evs)])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	// Dropped events (buffer full) would make the rate meaningless.
	var dropped float64
	for _, typ := range []string{feedback.TypeImpression, feedback.TypeClick, feedback.TypePurchase} {
		dropped += eventsCount(b, p, typ, "dropped")
	}
	if dropped > 0 {
		b.Fatalf("%v of %d events dropped", dropped, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func TestProducer_PublishAsyncBrokerDown(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	cfg.ProduceTimeout = 2 * time.Second
	var logs syncBuffer
	p, err := NewProducer(cfg, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.EnsureTopic(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	ev := testEvents(3)[0]
	// PublishAsync must return without waiting for the delivery, which
	// can only fail once ProduceTimeout has passed.
	p.PublishAsync(ev)
	if got := eventsCount(t, p, ev.Type, "error"); got != 0 {
		t.Errorf("PublishAsync returned after the delivery failed (errors = %v)", got)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := eventsCount(t, p, ev.Type, "error"); got != 1 {
		t.Errorf("errors counted = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "feedback event not delivered") {
		t.Errorf("failure not logged; logs:\n%s", logs.String())
	}
	if err := p.Publish(ctx, ev); err == nil {
		t.Error("Publish succeeded with the broker down")
	}
}

// syncBuffer is a bytes.Buffer safe for the producer's callback goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// kafka.compression reaches the produced batches: each record read back
// carries its batch's codec (Kafka's attribute numbers: 0 none, 2 snappy,
// 4 zstd). The client sends a batch uncompressed when the codec would not
// shrink it, so a compressing codec must show on some batches, and no
// other codec on any.
func TestProducer_Compression(t *testing.T) {
	b := startTestBroker(t, "")
	for _, tc := range []struct {
		codec string
		want  uint8
	}{{"", 2}, {CompressionNone, 0}, {CompressionSnappy, 2}, {"zstd", 4}} {
		t.Run("codec "+tc.codec, func(t *testing.T) {
			cfg := testConfig(b)
			cfg.Topic, cfg.Compression = "test.codec-"+strings.Trim(tc.codec+"-default", "-"), tc.codec
			p := newTestProducer(t, cfg, prometheus.NewRegistry())
			for _, ev := range testEvents(20) {
				if err := p.Publish(context.Background(), ev); err != nil {
					t.Fatalf("Publish: %v", err)
				}
			}
			_, recs, _ := readAll(t, cfg)
			if len(recs) != 20 {
				t.Fatalf("read %d records, want 20", len(recs))
			}
			with := 0
			for _, r := range recs {
				switch got := r.Attrs.CompressionType(); got {
				case tc.want:
					with++
				case 0:
				default:
					t.Fatalf("record at offset %d: codec %d, want %d or none", r.Offset, got, tc.want)
				}
			}
			if with == 0 {
				t.Fatalf("no record carries codec %d", tc.want)
			}
		})
	}
}
