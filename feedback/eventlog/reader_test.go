package eventlog

import (
	"context"
	"errors"
	"github.com/recsys-dev/recsys/feedback"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestReadTopic(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	p := newTestProducer(t, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	evs := testEvents(20)
	for _, ev := range evs {
		if err := p.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("stops at the end seen at start", func(t *testing.T) {
		// Events published while reading are beyond the snapshot.
		n := 0
		stats, err := ReadTopic(ctx, cfg, nil, func(ev feedback.Event, r *kgo.Record) error {
			if n == 0 {
				late := testEvents(1)[0]
				late.EventID = "late"
				if err := p.Publish(ctx, late); err != nil {
					return err
				}
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatalf("ReadTopic: %v", err)
		}
		if n != len(evs) || stats.Events != len(evs) {
			t.Fatalf("read %d events (stats %+v), want %d", n, stats, len(evs))
		}
		// The next read sees the late event.
		if got, _, _ := readAll(t, cfg); len(got) != len(evs)+1 {
			t.Fatalf("second read got %d events, want %d", len(got), len(evs)+1)
		}
	})

	t.Run("skips invalid records", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(cfg.Topic))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		bad := []string{`not json`, `{"type":"click"}`, `{"type":"click","schema_version":2,"timestamp":"2026-01-01T00:00:00Z","user_id":"u","item_id":"i"}`}
		for _, v := range bad {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("u"), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		// An old but well-formed event is valid on replay even though
		// feedback.Decode would refuse it at ingestion.
		old := testEvents(2)[1]
		old.EventID = "old"
		old.Timestamp = time.Now().Add(-90 * 24 * time.Hour)
		if err := p.Publish(ctx, old); err != nil {
			t.Fatal(err)
		}
		got, _, stats := readAll(t, cfg)
		if stats.Invalid != len(bad) || stats.Events != len(evs)+2 || stats.Records != len(evs)+2+len(bad) {
			t.Fatalf("stats = %+v", stats)
		}
		if _, ok := byID(got)["old"]; !ok {
			t.Error("old event not read")
		}
	})

	t.Run("callback error stops the read", func(t *testing.T) {
		boom := errors.New("boom")
		n := 0
		_, err := ReadTopic(ctx, cfg, nil, func(feedback.Event, *kgo.Record) error {
			n++
			if n == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || n != 3 {
			t.Fatalf("ReadTopic = %v after %d calls, want boom after 3", err, n)
		}
	})

	t.Run("unknown topic", func(t *testing.T) {
		c := cfg
		c.Topic = "no.such.topic"
		if _, err := ReadTopic(ctx, c, nil, func(feedback.Event, *kgo.Record) error { return nil }); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("ReadTopic = %v, want ErrUnknownTopic", err)
		}
	})

	t.Run("empty topic", func(t *testing.T) {
		c := cfg
		c.Topic = "empty.topic"
		newTestProducer(t, c, nil) // creates the topic
		stats, err := ReadTopic(ctx, c, nil, func(feedback.Event, *kgo.Record) error {
			t.Error("callback called on an empty topic")
			return nil
		})
		if err != nil || stats != (ReadStats{}) {
			t.Fatalf("ReadTopic = %+v, %v", stats, err)
		}
	})

	t.Run("context cancelled", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		if _, err := ReadTopic(cctx, cfg, nil, func(feedback.Event, *kgo.Record) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadTopic = %v, want context.Canceled", err)
		}
	})

	t.Run("invalid config", func(t *testing.T) {
		if _, err := ReadTopic(ctx, Config{}, nil, nil); err == nil {
			t.Fatal("ReadTopic accepted an empty config")
		}
	})
}
