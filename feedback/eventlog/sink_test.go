package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago, so
// a broker can be restarted on the same address its clients know.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startBrokerAt(t testing.TB, dir, addr string) *Broker {
	t.Helper()
	var lastErr error
	// The port can take a moment to be free again after a Close.
	for range 50 {
		b, err := StartBroker(BrokerConfig{DataDir: dir, Addr: addr}, nil)
		if err == nil {
			t.Cleanup(func() { _ = b.Close() })
			return b
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("StartBroker(%s): %v", addr, lastErr)
	return nil
}

func newTestSink(t testing.TB, cfg Config, spoolDir string, reg prometheus.Registerer) (*Sink, *Producer) {
	t.Helper()
	p := newTestProducer(t, cfg, nil)
	var sp *Spool
	if spoolDir != "" {
		sp = openTestSpool(t, SpoolConfig{Dir: spoolDir, MaxBytes: 64 << 20, SegmentBytes: 1 << 20})
	}
	s, err := NewSink(p, sp, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	return s, p
}

// runSink runs the drainer until the test ends.
func runSink(t testing.TB, s *Sink) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitDrained polls until the sink's spool is empty (no timing assertion:
// the bound is only there so a bug fails the test instead of hanging it).
func waitDrained(t testing.TB, s *Sink) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.Pending() > 0 || s.spooling.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("spool not drained: %d pending", s.Pending())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSink_PublishBrokerDownAndBack(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	b := startBrokerAt(t, dir, addr)
	cfg := testConfig(b)
	cfg.ProduceTimeout = 2 * time.Second
	reg := prometheus.NewRegistry()
	s, _ := newTestSink(t, cfg, t.TempDir(), reg)
	runSink(t, s)
	ctx := context.Background()
	evs := testEvents(60)

	var outcomes []Outcome
	for _, ev := range evs[:20] {
		out, err := s.PublishBatch(ctx, []feedback.Event{ev}, nil)
		if err != nil {
			t.Fatalf("Publish with the broker up: %v", err)
		}
		outcomes = append(outcomes, out)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs[20:40] {
		out, err := s.PublishBatch(ctx, []feedback.Event{ev}, nil)
		if err != nil {
			t.Fatalf("Publish with the broker down must spool, got %v", err)
		}
		outcomes = append(outcomes, out)
	}
	if outcomes[0] != Produced || outcomes[39] != Spooled {
		t.Fatalf("outcomes = %v, want produced first and spooled while down", outcomes)
	}
	if s.Pending() == 0 {
		t.Fatal("nothing spooled while the broker was down")
	}
	startBrokerAt(t, dir, addr)
	for _, ev := range evs[40:] {
		if err := s.Publish(ctx, ev); err != nil {
			t.Fatalf("Publish after the broker returned: %v", err)
		}
	}
	waitDrained(t, s)

	got, _, _ := readAll(t, cfg)
	seen := map[string]int{}
	for _, ev := range got {
		seen[ev.EventID]++
	}
	for _, ev := range evs {
		if seen[ev.EventID] == 0 {
			t.Errorf("acknowledged event %s lost", ev.EventID)
		}
	}
	// Per-user order survives the spool: positions count each user's events.
	last := map[string]int{}
	for _, ev := range got {
		if ev.Type == feedback.TypeImpression || seen[ev.EventID] > 1 {
			continue
		}
		if p := *ev.Position; p < last[ev.UserID] {
			t.Errorf("user %s: position %d after %d", ev.UserID, p, last[ev.UserID])
		} else {
			last[ev.UserID] = p
		}
	}
	if v := gatheredValue(t, reg, "recsys_feedback_spooled_total", nil); v < 20 {
		t.Errorf("spooled_total = %v, want >= 20", v)
	}
	if v := gatheredValue(t, reg, "recsys_feedback_produced_total", map[string]string{"path": "spool", "kind": "events"}); v < 20 {
		t.Errorf("produced_total{path=spool} = %v, want >= 20", v)
	}
}

func TestSink_PublishBatchDeadLetters(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	reg := prometheus.NewRegistry()
	s, _ := newTestSink(t, cfg, "", reg)
	ctx := context.Background()
	evs := testEvents(5)
	dead := []DeadLetter{{Source: "batch", Index: 5, Field: "type", Reason: "must be one of ...", Payload: `{"type":"like"}`, Key: "u1"}}
	out, err := s.PublishBatch(ctx, evs, dead)
	if err != nil || out != Produced {
		t.Fatalf("PublishBatch = %v, %v", out, err)
	}
	got, _, _ := readAll(t, cfg)
	if len(got) != len(evs) {
		t.Fatalf("main topic holds %d events, want %d (no dead letter)", len(got), len(evs))
	}
	dcfg := cfg
	dcfg.Topic = cfg.WithDefaults().DeadLetterTopic
	var dls []DeadLetter
	var headers []string
	readRaw(t, dcfg, func(r *kgo.Record) {
		var d DeadLetter
		if err := json.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("dead letter value: %v", err)
		}
		dls = append(dls, d)
		headers = append(headers, string(r.Headers[0].Value))
	})
	if len(dls) != 1 || dls[0].Field != "type" || dls[0].Payload != `{"type":"like"}` || dls[0].Index != 5 {
		t.Fatalf("dead letters = %+v", dls)
	}
	if headers[0] != "type: must be one of ..." {
		t.Errorf("reason header = %q", headers[0])
	}
	if v := gatheredValue(t, reg, "recsys_feedback_dead_letters_total", nil); v != 1 {
		t.Errorf("dead_letters_total = %v", v)
	}
	if v := gatheredValue(t, reg, "recsys_feedback_accepted_total", map[string]string{"type": feedback.TypeClick}); v != 2 {
		t.Errorf("accepted_total{click} = %v, want 2", v)
	}
}

func TestSink_SpoolFull(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	cfg.ProduceTimeout = time.Second
	p := newTestProducer(t, cfg, nil)
	sp := openTestSpool(t, SpoolConfig{Dir: t.TempDir(), MaxBytes: 2000, SegmentBytes: 1000, RetryAfter: 7 * time.Second})
	s, err := NewSink(p, sp, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	ctx := context.Background()
	var full *FullError
	for i, ev := range testEvents(100) {
		err := s.Publish(ctx, ev)
		if err == nil {
			continue
		}
		if !errors.As(err, &full) || !errors.Is(err, ErrSpoolFull) {
			t.Fatalf("event %d: Publish = %v, want a *FullError", i, err)
		}
		break
	}
	if full == nil {
		t.Fatal("a 2000-byte spool took 100 events")
	}
	if full.RetryAfter() != 7*time.Second {
		t.Errorf("RetryAfter = %v", full.RetryAfter())
	}
}

func TestSink_EncodeEntry(t *testing.T) {
	s := &Sink{p: &Producer{cfg: Config{Topic: "ev"}}, dlqTopic: "ev.dlq"}
	tests := []struct {
		name string
		rec  *kgo.Record
		dead bool
	}{
		{"event", &kgo.Record{Topic: "ev", Key: []byte("u1"), Value: []byte(`{"a":1}`), Headers: []kgo.RecordHeader{{Key: HeaderEventType, Value: []byte("click")}}}, false},
		{"dead letter", &kgo.Record{Topic: "ev.dlq", Key: []byte(""), Value: []byte("x"), Headers: []kgo.RecordHeader{{Key: HeaderDeadLetterReason, Value: []byte("type: bad")}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.decodeEntry(encodeEntry(tt.rec, tt.dead))
			if err != nil {
				t.Fatal(err)
			}
			if r.Topic != tt.rec.Topic || string(r.Key) != string(tt.rec.Key) || string(r.Value) != string(tt.rec.Value) {
				t.Errorf("round trip: %+v", r)
			}
		})
	}
	for _, bad := range [][]byte{nil, {2}, {0, 5, 'a'}, {0, 1, 'a', 9}} {
		if _, err := s.decodeEntry(bad); err == nil {
			t.Errorf("decodeEntry(%v) accepted a malformed entry", bad)
		}
	}
}

// readRaw reads every record of cfg.Topic (no validation).
func readRaw(t testing.TB, cfg Config, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	parts, err := partitionsOf(ctx, cl, cfg.Topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := listOffsets(ctx, cl, cfg.Topic, parts, -1)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	offs := map[int32]kgo.Offset{}
	remaining := 0
	for p, e := range ends {
		offs[p] = kgo.NewOffset().AtStart()
		remaining += int(e)
	}
	cl, err = kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: offs}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("readRaw: %d records missing", remaining)
		}
		fs.EachRecord(func(r *kgo.Record) { remaining--; fn(r) })
	}
}

// Impressions the server emits while the broker is down are spooled, not
// lost, and reach the topic once it is back; without a spool they are
// dropped and counted.
func TestSink_PublishAsyncSpoolsWhileBrokerDown(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	b := startBrokerAt(t, dir, addr)
	cfg := testConfig(b)
	cfg.ProduceTimeout = time.Second
	s, p := newTestSink(t, cfg, t.TempDir(), nil)
	runSink(t, s)
	var imps []feedback.Event
	for _, ev := range testEvents(60) {
		if ev.Type == feedback.TypeImpression {
			imps = append(imps, ev)
		}
	}
	for _, ev := range imps[:5] {
		s.PublishAsync(ev)
	}
	if err := p.cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range imps[5:] {
		s.PublishAsync(ev)
	}
	// The async records fail after the produce timeout and are spooled.
	deadline := time.Now().Add(30 * time.Second)
	for eventsCount(t, p, feedback.TypeImpression, "spooled") < float64(len(imps)-5) {
		if time.Now().After(deadline) {
			t.Fatalf("spooled %v of %d impressions sent while the broker was down", eventsCount(t, p, feedback.TypeImpression, "spooled"), len(imps)-5)
		}
		time.Sleep(50 * time.Millisecond)
	}
	startBrokerAt(t, dir, addr)
	waitDrained(t, s)
	got, _, _ := readAll(t, cfg)
	seen := map[string]bool{}
	for _, ev := range got {
		seen[ev.EventID] = true
	}
	for _, ev := range imps {
		if !seen[ev.EventID] {
			t.Errorf("impression %s lost", ev.EventID)
		}
	}
}

// TestSink_PerUserOrderAcrossSwitches publishes each user's events one
// after another, users at once, while the broker goes away and comes back
// twice and the drainer switches the sink to the spool and back: each
// user's events must reach the topic in the order they were acknowledged.
// The switch back once raced appends still on their way into the spool.
func TestSink_PerUserOrderAcrossSwitches(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	b := startBrokerAt(t, dir, addr)
	cfg := testConfig(b)
	cfg.ProduceTimeout, cfg.SpoolAfter = 2*time.Second, 200*time.Millisecond
	s, _ := newTestSink(t, cfg, t.TempDir(), nil)
	runSink(t, s)
	const users, each = 8, 60
	var wg sync.WaitGroup
	now := time.Now().UTC()
	for u := range users {
		wg.Go(func() {
			for i := range each {
				pos := i
				ev := feedback.Event{EventID: fmt.Sprintf("o%d-%03d", u, i), Type: feedback.TypeClick, SchemaVersion: feedback.SchemaVersion,
					Timestamp: now, UserID: fmt.Sprintf("ou%d", u), ItemID: "x", Position: &pos}
				if err := s.Publish(context.Background(), ev); err != nil {
					t.Errorf("user %d event %d: %v", u, i, err)
					return
				}
			}
		})
	}
	for range 2 {
		time.Sleep(150 * time.Millisecond)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
		b = startBrokerAt(t, dir, addr)
	}
	wg.Wait()
	waitDrained(t, s)
	got, _, _ := readAll(t, cfg)
	seen := map[string]bool{}
	last := map[string]int{}
	for _, ev := range got {
		if seen[ev.EventID] || !strings.HasPrefix(ev.EventID, "o") {
			continue
		}
		seen[ev.EventID] = true
		if p, ok := last[ev.UserID]; ok && *ev.Position < p {
			t.Errorf("user %s: event %d reached the topic after %d", ev.UserID, *ev.Position, p)
		}
		last[ev.UserID] = *ev.Position
	}
	if len(seen) != users*each {
		t.Errorf("%d of %d acknowledged events on the topic", len(seen), users*each)
	}
}
