package eventlog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// threeBrokers is a three-broker kfake cluster.
func threeBrokers(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func newSinkOn(t *testing.T, cfg Config) (*Sink, *kgo.Client) {
	t.Helper()
	p, err := NewProducer(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	s, err := NewSink(p, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, p.cl
}

func TestEnsureTopics_Durability(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("created on three brokers: replication 3, min.insync 2", func(t *testing.T) {
		s, _ := newSinkOn(t, Config{Brokers: threeBrokers(t), Topic: "d.events", Retention: 48 * time.Hour})
		if err := s.EnsureTopics(ctx); err != nil {
			t.Fatal(err)
		}
		for _, d := range s.Durability() {
			if !d.Durable() || d.Replication != 3 || d.MinISR != 2 || d.Brokers != 3 {
				t.Errorf("%s: want replication 3, min.insync.replicas 2 on 3 brokers", d)
			}
		}
	})
	t.Run("one broker: starts, not durable; refused when required", func(t *testing.T) {
		b := startTestBroker(t, "")
		s, _ := newSinkOn(t, Config{Brokers: b.Addrs(), Topic: "d1.events"})
		if err := s.EnsureTopics(ctx); err != nil {
			t.Fatalf("one broker without the requirement: %v", err)
		}
		if d := s.Durability(); len(d) != 2 || d[0].Durable() {
			t.Fatalf("durability %v, want two non-durable topics", d)
		}
		s2, _ := newSinkOn(t, Config{Brokers: b.Addrs(), Topic: "d1.events", RequireDurableTopic: true})
		if err := s2.EnsureTopics(ctx); !errors.Is(err, ErrNotDurable) {
			t.Fatalf("EnsureTopics with require_durable_topic on one broker = %v, want ErrNotDurable", err)
		}
	})
	t.Run("an existing topic with min.insync.replicas 1 is refused when required", func(t *testing.T) {
		addrs := threeBrokers(t)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		if _, err := adm.CreateTopics(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("1")}, "weak.events", "weak.events.dlq"); err != nil {
			t.Fatal(err)
		}
		s, _ := newSinkOn(t, Config{Brokers: addrs, Topic: "weak.events", RequireDurableTopic: true})
		err = s.EnsureTopics(ctx)
		if !errors.Is(err, ErrNotDurable) {
			t.Fatalf("EnsureTopics = %v, want ErrNotDurable", err)
		}
		t.Logf("refused: %v", err)
	})
}
