package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
)

// fullPublisher refuses everything as a full spool would.
type fullPublisher struct{}

func (fullPublisher) Publish(context.Context, feedback.Event) error {
	return &eventlog.FullError{After: 2500 * time.Millisecond}
}

func (fullPublisher) PublishBatch(context.Context, []feedback.Event, []eventlog.DeadLetter) (eventlog.Outcome, error) {
	return 0, &eventlog.FullError{After: 2500 * time.Millisecond}
}

const batchClick = `{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u1","item_id":"i9"}`

func TestServer_FeedbackBatch(t *testing.T) {
	t.Run("publisher without batch support rejects invalid events", func(t *testing.T) {
		env := newTestEnv(t, nil)
		body := `{"events":[` + batchClick + `,{"type":"like"},` + strings.Replace(batchClick, `"u1"`, `"u2"`, 1) + `]}`
		r := env.postJSON(t, "/v1/feedback/batch", body)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var got batchResponse
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Accepted != 2 || got.Rejected != 1 || len(got.Results) != 3 {
			t.Fatalf("response %+v", got)
		}
		if res := got.Results[1]; res.Status != statusRejected || res.Field != "events[1].schema_version" && res.Field != "events[1].type" {
			t.Errorf("result[1] = %+v", res)
		}
		pub := env.pub.published()
		if len(pub) != 2 || pub[0].EventID != got.Results[0].EventID || pub[1].UserID != "u2" {
			t.Errorf("published %+v", pub)
		}
	})
	t.Run("malformed envelopes are 400", func(t *testing.T) {
		env := newTestEnv(t, nil)
		many := `{"events":[` + strings.TrimSuffix(strings.Repeat(batchClick+",", MaxBatchEvents+1), ",") + `]}`
		for name, body := range map[string]string{
			"not an object": `[1]`, "no events": `{}`, "empty": `{"events":[]}`,
			"unknown field": `{"events":[` + batchClick + `],"x":1}`, "too many": many,
		} {
			t.Run(name, func(t *testing.T) {
				r := env.postJSON(t, "/v1/feedback/batch", body)
				if r.status != http.StatusBadRequest {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
			})
		}
		if n := len(env.pub.published()); n != 0 {
			t.Errorf("%d events published from malformed batches", n)
		}
	})
	t.Run("full spool is 503 with Retry-After", func(t *testing.T) {
		env := newTestEnv(t, func(_ *Config, d *Deps) { d.Feedback = fullPublisher{} })
		for _, tc := range []struct{ path, body string }{
			{"/v1/feedback", batchClick},
			{"/v1/feedback/batch", `{"events":[` + batchClick + `]}`},
		} {
			r := env.postJSON(t, tc.path, tc.body)
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "3" {
				t.Errorf("%s: status %d Retry-After %q, want 503 and 3", tc.path, r.status, r.header.Get("Retry-After"))
			}
		}
	})
}

// malformedKinds are 20 kinds of bad events, each with the field the error
// must name.
var malformedKinds = []struct{ body, field string }{
	{`not json`, "body"},
	{`[]`, "body"},
	{`{"type":"click"}`, "schema_version"},
	{`{"type":"like","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i"}`, "type"},
	{`{"type":"click","schema_version":2,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i"}`, "schema_version"},
	{`{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","item_id":"i"}`, "user_id"},
	{`{"type":"click","schema_version":1,"user_id":"u","item_id":"i"}`, "timestamp"},
	{`{"type":"click","schema_version":1,"timestamp":"yesterday","user_id":"u","item_id":"i"}`, "timestamp"},
	{`{"type":"click","schema_version":1,"timestamp":"2030-01-01T00:00:00Z","user_id":"u","item_id":"i"}`, "timestamp"},
	{`{"type":"click","schema_version":1,"timestamp":"2020-01-01T00:00:00Z","user_id":"u","item_id":"i"}`, "timestamp"},
	{`{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u"}`, "item_id"},
	{`{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i","colour":"red"}`, "colour"},
	{`{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i","position":-1}`, "position"},
	{`{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i","value":3}`, "value"},
	{`{"type":"purchase","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i","value":-1}`, "value"},
	{`{"type":"add_to_cart","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i","quantity":0}`, "quantity"},
	{`{"type":"dwell","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i"}`, "dwell_ms"},
	{`{"type":"dwell","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","item_id":"i","dwell_ms":-5}`, "dwell_ms"},
	{`{"type":"impression","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u","surface":"search"}`, "items"},
	{`{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u\u0000","item_id":"i"}`, "user_id"},
}

// TestServer_MalformedEventsNeverReachTopic is must-show 2: 1,000 malformed
// events of 20 kinds, half posted singly (4xx) and half in batches (dead
// letters with reasons), against a real Kafka-protocol broker; the events
// topic holds only the valid control events.
func TestServer_MalformedEventsNeverReachTopic(t *testing.T) {
	if len(malformedKinds) != 20 {
		t.Fatalf("%d kinds, want 20", len(malformedKinds))
	}
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := eventlog.Config{Brokers: b.Addrs(), Topic: "ms2.events", Partitions: 2}
	p, err := eventlog.NewProducer(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sink, err := eventlog.NewSink(p, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sink.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t, func(_ *Config, d *Deps) { d.Feedback = sink })

	statuses := map[int]int{}
	for i := range 500 {
		k := malformedKinds[i%20]
		r := env.postJSON(t, "/v1/feedback", k.body)
		statuses[r.status]++
		if r.status < 400 || r.status >= 500 {
			t.Fatalf("single malformed event (kind %d) got %d", i%20, r.status)
		}
		if d := errorOf(t, r); d.Field != k.field {
			t.Errorf("kind %d: field %q, want %q (%s)", i%20, d.Field, k.field, d.Message)
		}
	}
	// 500 more in batches of 50, each batch with one valid control event.
	deadLettered := 0
	for batch := range 10 {
		parts := []string{strings.Replace(batchClick, `"i9"`, fmt.Sprintf(`"ok-%d"`, batch), 1)}
		for j := range 50 {
			body := malformedKinds[(batch*50+j)%20].body
			if body == "not json" {
				// Inside a JSON array the non-JSON kind is a string value.
				body = `"not json"`
			}
			parts = append(parts, body)
		}
		r := env.postJSON(t, "/v1/feedback/batch", `{"events":[`+strings.Join(parts, ",")+`]}`)
		if r.status != http.StatusOK {
			t.Fatalf("batch %d: status %d %s", batch, r.status, r.body)
		}
		var got batchResponse
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		for j, res := range got.Results[1:] {
			want := "events[" + fmt.Sprint(j+1) + "]." + malformedKinds[(batch*50+j)%20].field
			if res.Status != statusDeadLettered || res.Field != want || res.Reason == "" {
				t.Errorf("batch %d result %d = %+v, want dead_lettered %s", batch, j+1, res, want)
			}
		}
		deadLettered += got.DeadLettered
	}
	if deadLettered != 500 {
		t.Fatalf("dead-lettered %d, want 500", deadLettered)
	}
	var main []feedback.Event
	if _, err := eventlog.ReadTopic(ctx, cfg, nil, func(ev feedback.Event, _ *kgo.Record) error {
		main = append(main, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(main) != 10 {
		t.Fatalf("events topic holds %d events, want the 10 valid control events", len(main))
	}
	for _, ev := range main {
		if !strings.HasPrefix(ev.ItemID, "ok-") {
			t.Errorf("a malformed event reached the events topic: %+v", ev)
		}
	}
	dlq := cfg
	dlq.Topic = "ms2.events.dlq"
	n, reasons := 0, 0
	// The dead letters are not events, so ReadTopic counts them as invalid
	// records: the count is what matters here.
	stats, err := eventlog.ReadTopic(ctx, dlq, nil, func(feedback.Event, *kgo.Record) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	reasons = stats.Invalid
	if n != 0 || reasons != 500 {
		t.Fatalf("dead-letter topic: %d events, %d dead letters, want 0 and 500", n, reasons)
	}
	t.Logf("1000 malformed events: single posts by status %v; 500 dead letters; events topic holds %d (the valid controls)", statuses, len(main))
}
