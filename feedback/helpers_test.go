package feedback

import (
	"context"
	"fmt"
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

// testEvents returns n valid events spread over users u0..u4 and over all
// three types. Position counts each user's events, so per-user order can be
// checked after a round trip.
func testEvents(n int) []Event {
	now := time.Now().UTC().Truncate(time.Millisecond)
	perUser := map[string]int{}
	evs := make([]Event, n)
	for i := range evs {
		user := fmt.Sprintf("u%d", i%5)
		seq := perUser[user]
		perUser[user]++
		ev := Event{
			EventID: fmt.Sprintf("ev-%04d", i), SchemaVersion: SchemaVersion,
			Timestamp: now.Add(time.Duration(i) * time.Millisecond), UserID: user, RequestID: fmt.Sprintf("req-%d", i/3),
		}
		switch i % 3 {
		case 0:
			ev.Type, ev.Surface, ev.Query, ev.Bundle = TypeImpression, SurfaceSearch, "q", "v1"
			ev.FeatureNames = []string{"seq", "score"}
			ev.Items = []ImpressionItem{
				{ItemID: "a", Position: seq, Score: 0.5, Features: []float32{float32(seq), 0.25}},
				{ItemID: "b", Position: seq + 1, Score: 0.25, Features: []float32{float32(seq), 0.125}},
			}
		case 1:
			pos := seq
			ev.Type, ev.ItemID, ev.Position = TypeClick, fmt.Sprintf("item-%d", i), &pos
		default:
			pos, v := seq, float64(i)+0.5
			ev.Type, ev.ItemID, ev.Position, ev.Value = TypePurchase, fmt.Sprintf("item-%d", i), &pos, &v
		}
		evs[i] = ev
	}
	return evs
}

// readAll reads the whole topic and returns the events with their records.
func readAll(t testing.TB, cfg Config) ([]Event, []*kgo.Record, ReadStats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var evs []Event
	var recs []*kgo.Record
	stats, err := ReadTopic(ctx, cfg, nil, func(ev Event, r *kgo.Record) error {
		evs = append(evs, ev)
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadTopic: %v", err)
	}
	return evs, recs, stats
}

func byID(evs []Event) map[string]Event {
	m := make(map[string]Event, len(evs))
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

// gatheredValue returns the counter value, or the histogram sample count, of
// the series of name with exactly labels; 0 when there is none.
func gatheredValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
