package eventlog

import (
	"context"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// replayRows returns "partition/offset/event id" for every event of a replay.
func replayRows(t *testing.T, cfg Config, r Range) ([]string, ReadStats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rows []string
	stats, err := Replay(ctx, cfg, r, nil, nil, func(ev feedback.Event, rec *kgo.Record) error {
		rows = append(rows, fmt.Sprintf("%d/%d/%s", rec.Partition, rec.Offset, ev.EventID))
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return rows, stats
}

func TestReplay(t *testing.T) {
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	p := newTestProducer(t, cfg, nil)
	ctx := context.Background()
	evs := testEvents(40)
	for _, ev := range evs[:20] {
		if err := p.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Log times are milliseconds: leave a gap so the boundary is clean.
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	for _, ev := range evs[20:] {
		if err := p.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("same rows twice in a row", func(t *testing.T) {
		first, _ := replayRows(t, cfg, Range{})
		second, _ := replayRows(t, cfg, Range{})
		if len(first) != 40 || !reflect.DeepEqual(first, second) {
			t.Fatalf("two replays differ or are incomplete:\n%v\n%v", first, second)
		}
	})
	t.Run("until bounds the replay while new events arrive", func(t *testing.T) {
		until := time.Now()
		time.Sleep(20 * time.Millisecond)
		first, _ := replayRows(t, cfg, Range{Until: until})
		extra := testEvents(1)[0]
		extra.EventID = "after-until"
		if err := p.Publish(ctx, extra); err != nil {
			t.Fatal(err)
		}
		second, _ := replayRows(t, cfg, Range{Until: until})
		if len(first) != 40 || !reflect.DeepEqual(first, second) {
			t.Fatalf("replays up to a fixed time differ: %d vs %d rows", len(first), len(second))
		}
	})
	t.Run("from a time", func(t *testing.T) {
		rows, _ := replayRows(t, cfg, Range{From: mid, Until: mid.Add(time.Hour)})
		ids := map[string]bool{}
		for _, r := range rows {
			var p, o int
			var id string
			fmt.Sscanf(r, "%d/%d/%s", &p, &o, &id)
			ids[id] = true
		}
		for _, ev := range evs[:20] {
			if ids[ev.EventID] {
				t.Errorf("event %s from before From replayed", ev.EventID)
			}
		}
		for _, ev := range evs[20:] {
			if !ids[ev.EventID] {
				t.Errorf("event %s after From missing", ev.EventID)
			}
		}
	})
	t.Run("from offsets", func(t *testing.T) {
		all, _ := replayRows(t, cfg, Range{})
		rows, _ := replayRows(t, cfg, Range{FromOffsets: map[int32]int64{0: 2}})
		if len(rows) != len(all)-2 {
			t.Fatalf("from offset 2 of partition 0: %d rows, want %d", len(rows), len(all)-2)
		}
	})
	t.Run("invalid records go to the dead-letter callback", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(cfg.Topic))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("u9"), Value: []byte(`{"type":"click"}`)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		var dead []DeadLetter
		stats, err := Replay(ctx, cfg, Range{}, nil, func(d DeadLetter) { dead = append(dead, d) }, func(feedback.Event, *kgo.Record) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if stats.Invalid != 1 || len(dead) != 1 || dead[0].Source != "replay" || dead[0].Field == "" || dead[0].Key != "u9" {
			t.Fatalf("stats %+v, dead letters %+v", stats, dead)
		}
	})
	t.Run("unknown topic", func(t *testing.T) {
		c := cfg
		c.Topic = "nope"
		if _, err := Replay(ctx, c, Range{}, nil, nil, func(feedback.Event, *kgo.Record) error { return nil }); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("Replay = %v, want ErrUnknownTopic", err)
		}
	})
}
