package itemlog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/feedback/eventlog"
)

func item(id, title string) *catalog.Item {
	return &catalog.Item{ID: id, Title: title, Price: 3, Available: true, Tags: []string{"a", "b"},
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Brand: "B", Category: "C", Description: "a thing to sell"}
}

func TestChange_Validate(t *testing.T) {
	bad := item("x", "")
	for _, tc := range []struct {
		c    Change
		want string
	}{
		{Change{Op: OpUpsert, ID: "x"}, "item: missing"},
		{Change{Op: OpUpsert, ID: "y", Item: item("x", "t")}, "differs"},
		{Change{Op: OpUpsert, ID: "x", Item: bad}, "title: empty"},
		{Change{Op: OpDelete, ID: "x", Item: item("x", "t")}, "carries no item"},
		{Change{Op: OpDelete}, "id: missing"},
		{Change{Op: "rename", ID: "x"}, "op: must be"},
	} {
		if err := tc.c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	c := Change{Op: OpUpsert, ID: "x", Item: item("x", "t"), At: time.Now().UTC(), Source: "put"}
	b, err := Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b, 7)
	if err != nil || got.Offset != 7 || got.Item.Title != "t" || !got.At.Equal(c.At) || got.Source != "put" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := Decode([]byte(`{"op":"upsert","id":"x","item":{"id":"x","title":"t"}}`), 8); err == nil || !strings.Contains(err.Error(), "record 8") {
		t.Errorf("an item without created_at decoded: %v", err)
	}
}

func TestFold(t *testing.T) {
	items := []catalog.Item{*item("a", "A"), *item("b", "B"), *item("c", "C")}
	changes := []Change{
		{Op: OpUpsert, ID: "b", Item: item("b", "B2")},
		{Op: OpDelete, ID: "a"},
		{Op: OpUpsert, ID: "d", Item: item("d", "D")},
		{Op: OpDelete, ID: "d"},
		{Op: OpUpsert, ID: "d", Item: item("d", "D2")},
		{Op: OpUpsert, ID: "a", Item: item("a", "A2")},
		{Op: OpDelete, ID: "nope"},
	}
	got := Fold(items, changes)
	var titles []string
	for _, it := range got {
		titles = append(titles, it.ID+"="+it.Title)
	}
	if want := []string{"a=A2", "b=B2", "c=C", "d=D2"}; !slices.Equal(titles, want) {
		t.Errorf("Fold = %v, want %v", titles, want)
	}
	if items[1].Title != "B" {
		t.Error("Fold changed its input")
	}
}

// The topic on the embedded broker: writes come back in order from End,
// Replay and Follow, with their offsets; a poison record is skipped.
func TestLog_Kafka(t *testing.T) {
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l, err := Open(eventlog.Config{Brokers: b.Addrs()}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.End(ctx); !errors.Is(err, ErrNoTopic) {
		t.Fatalf("End before the topic exists: %v, want ErrNoTopic", err)
	}
	if err := l.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	offs, err := l.Write(ctx, []Change{{Op: OpUpsert, ID: "a", Item: item("a", "A")}, {Op: OpDelete, ID: "b"}})
	if err != nil || !slices.Equal(offs, []int64{0, 1}) {
		t.Fatalf("Write = %v, %v", offs, err)
	}
	// Each record's key is its id and its value the change alone (one
	// write shares one buffer among its records).
	raw, err := l.cfg.NewClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{DefaultTopic: {0: kgo.NewOffset().At(0)}}))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for len(keys) < 2 && ctx.Err() == nil {
		raw.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			c, err := Decode(r.Value, r.Offset)
			if err != nil {
				t.Errorf("record %d: %v", r.Offset, err)
			}
			keys = append(keys, string(r.Key)+"="+c.ID)
			if c.ID == "a" && (c.Item == nil || c.Item.Title != "A") {
				t.Errorf("record a holds %+v", c.Item)
			}
		})
	}
	raw.Close()
	if !slices.Equal(keys, []string{"a=a", "b=b"}) {
		t.Fatalf("records (key=id) = %v", keys)
	}
	if _, err := l.Write(ctx, []Change{{Op: OpUpsert, ID: "c"}}); err == nil {
		t.Fatal("an invalid change was written")
	}
	// A record some other writer put there.
	if err := l.cl.ProduceSync(ctx, poison()).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write(ctx, []Change{{Op: OpUpsert, ID: "c", Item: item("c", "C")}}); err != nil {
		t.Fatal(err)
	}
	end, err := l.End(ctx)
	if err != nil || end != 4 {
		t.Fatalf("End = %d, %v", end, err)
	}
	var got []string
	var bad []int64
	err = l.Replay(ctx, 1, end, func(o int64, _ error) { bad = append(bad, o) }, func(c Change) error {
		got = append(got, c.Op+":"+c.ID)
		return nil
	})
	if err != nil || !slices.Equal(got, []string{"delete:b", "upsert:c"}) || !slices.Equal(bad, []int64{2}) {
		t.Fatalf("Replay = %v (bad %v), %v", got, bad, err)
	}
	stop := errors.New("stop")
	var next int64
	err = l.Follow(ctx, 0, nil, func(batch []Change, n int64) error {
		next = n
		if n >= end {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || next != end {
		t.Fatalf("Follow stopped at %d with %v", next, err)
	}
}

func BenchmarkDecode(b *testing.B) {
	c := Change{Op: OpUpsert, ID: "item-0001234", Item: item("item-0001234", "wireless noise cancelling headphones"), At: time.Now(), Source: "patch"}
	v, err := Encode(&c)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(v, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	c := Change{Op: OpUpsert, ID: "item-0001234", Item: item("item-0001234", "wireless noise cancelling headphones"), At: time.Now(), Source: "patch"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(&c); err != nil {
			b.Fatal(err)
		}
	}
}

func poison() *kgo.Record {
	return &kgo.Record{Topic: DefaultTopic, Key: []byte("p"), Value: []byte("not json"), Partition: 0}
}
