package eventlog

import (
	"context"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/internal/eventtest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startTestBroker starts an embedded broker, in memory when dir is empty,
// and closes it at the end of the test.
func startTestBroker(t testing.TB, dir string) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{DataDir: dir, Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testConfig(b *Broker) Config {
	return Config{Brokers: b.Addrs(), Topic: "test.events", ClientID: "feedback-test", ProduceTimeout: 10 * time.Second, Partitions: 3}
}

// newTestProducer returns a producer whose topic exists.
func newTestProducer(t testing.TB, cfg Config, reg prometheus.Registerer) *Producer {
	t.Helper()
	p, err := NewProducer(cfg, nil, reg)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.EnsureTopic(ctx); err != nil {
		t.Fatalf("EnsureTopic: %v", err)
	}
	return p
}

func testEvents(n int) []feedback.Event { return eventtest.Events(n) }

func readAll(t testing.TB, cfg Config) ([]feedback.Event, []*kgo.Record, ReadStats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var evs []feedback.Event
	var recs []*kgo.Record
	stats, err := ReadTopic(ctx, cfg, nil, func(ev feedback.Event, r *kgo.Record) error {
		evs = append(evs, ev)
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadTopic: %v", err)
	}
	return evs, recs, stats
}

func byID(evs []feedback.Event) map[string]feedback.Event {
	m := make(map[string]feedback.Event, len(evs))
	for _, ev := range evs {
		m[ev.EventID] = ev
	}
	return m
}

// eventsCount reads recsys_feedback_events_total{type,result} from p.
func eventsCount(t testing.TB, p *Producer, typ, result string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.m.events)
	return gatheredValue(t, reg, "recsys_feedback_events_total", map[string]string{"type": typ, "result": result})
}

func gatheredValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	return eventtest.Gathered(t, g, name, labels)
}
