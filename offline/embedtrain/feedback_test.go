package embedtrain

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/feedback"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func impression(id, user, req, surface, query string) feedback.Event {
	return feedback.Event{EventID: id, Type: feedback.TypeImpression, SchemaVersion: 1, Timestamp: t0,
		UserID: user, RequestID: req, Surface: surface, Query: query,
		Items: []feedback.ImpressionItem{{ItemID: "i1", Position: 0}}}
}

func action(id, typ, user, item, req, query string, at time.Duration) feedback.Event {
	return feedback.Event{EventID: id, Type: typ, SchemaVersion: 1, Timestamp: t0.Add(at),
		UserID: user, ItemID: item, RequestID: req, Query: query}
}

func catalogText(ids ...string) ItemText {
	return func(id string) (string, bool) {
		if slices.Contains(ids, id) {
			return "text of " + id, true
		}
		return "", false
	}
}

func TestFeedbackLog_SearchPairs(t *testing.T) {
	text := catalogText("i1", "i2", "i3")
	tests := []struct {
		name   string
		events []feedback.Event
		want   []Pair
		stats  PairStats
	}{
		{
			name: "click joined to its search impression",
			events: []feedback.Event{
				impression("e1", "u1", "r1", feedback.SurfaceSearch, "red shoes"),
				action("e2", feedback.TypeClick, "u1", "i1", "r1", "", time.Second),
			},
			want:  []Pair{{"red shoes", "text of i1"}},
			stats: PairStats{Pairs: 1},
		},
		{
			name: "click arriving before its impression still joins",
			events: []feedback.Event{
				action("e2", feedback.TypePurchase, "u1", "i2", "r1", "", time.Second),
				impression("e1", "u1", "r1", feedback.SurfaceSearch, "blue hat"),
			},
			want:  []Pair{{"blue hat", "text of i2"}},
			stats: PairStats{Pairs: 1},
		},
		{
			name:   "query carried by the click itself",
			events: []feedback.Event{action("e1", feedback.TypeAddToCart, "u1", "i3", "", "lamp", 0)},
			want:   []Pair{{"lamp", "text of i3"}},
			stats:  PairStats{Pairs: 1},
		},
		{
			name: "recommendation clicks and dwell give no pair",
			events: []feedback.Event{
				impression("e1", "u1", "r1", feedback.SurfaceRecommend, ""),
				action("e2", feedback.TypeClick, "u1", "i1", "r1", "", time.Second),
				action("e3", feedback.TypeDwell, "u1", "i1", "", "lamp", time.Second),
			},
			stats: PairStats{NoQuery: 1},
		},
		{
			name: "unknown item skipped",
			events: []feedback.Event{
				action("e1", feedback.TypeClick, "u1", "gone", "", "lamp", 0),
			},
			stats: PairStats{UnknownItem: 1},
		},
		{
			name: "repeated click and redelivered event counted once",
			events: []feedback.Event{
				action("e1", feedback.TypeClick, "u1", "i1", "", "Lamp", 0),
				action("e1", feedback.TypeClick, "u1", "i1", "", "Lamp", 0),
				action("e2", feedback.TypeClick, "u1", "i1", "", "lamp", time.Minute),
				action("e3", feedback.TypeClick, "u2", "i1", "", "lamp", time.Minute),
			},
			want:  []Pair{{"Lamp", "text of i1"}, {"lamp", "text of i1"}},
			stats: PairStats{Pairs: 2, Duplicates: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewFeedbackLog()
			for _, ev := range tt.events {
				l.Add(ev)
			}
			got, st := l.SearchPairs(text)
			if !slices.Equal(got, tt.want) || st != tt.stats {
				t.Errorf("pairs %q stats %+v, want %q %+v", got, st, tt.want, tt.stats)
			}
		})
	}
}

func TestFeedbackLog_CoEngagementPairs(t *testing.T) {
	text := catalogText("a", "b", "c", "d")
	click := func(id, user, item string, at time.Duration) feedback.Event {
		return action(id, feedback.TypeClick, user, item, "", "", at)
	}
	tests := []struct {
		name   string
		events []feedback.Event
		window time.Duration
		max    int
		want   []Pair
		stats  PairStats
	}{
		{
			name: "consecutive items within the window",
			events: []feedback.Event{
				click("1", "u1", "a", 0), click("2", "u1", "b", 10*time.Minute), click("3", "u1", "c", 15*time.Minute),
			},
			want:  []Pair{{"text of a", "text of b"}, {"text of b", "text of c"}},
			stats: PairStats{Pairs: 2},
		},
		{
			name: "a gap longer than the window splits sessions",
			events: []feedback.Event{
				click("1", "u1", "a", 0), click("2", "u1", "b", 2*time.Hour),
			},
			stats: PairStats{},
		},
		{
			name: "events out of order are sorted by time; repeats of one item skipped",
			events: []feedback.Event{
				click("3", "u1", "b", 5*time.Minute), click("1", "u1", "a", 0), click("2", "u1", "a", time.Minute),
			},
			want:  []Pair{{"text of a", "text of b"}},
			stats: PairStats{Pairs: 1, Duplicates: 1},
		},
		{
			name: "users never pair with each other",
			events: []feedback.Event{
				click("1", "u1", "a", 0), click("2", "u2", "b", time.Minute),
			},
			stats: PairStats{},
		},
		{
			name: "cap per user",
			events: []feedback.Event{
				click("1", "u1", "a", 0), click("2", "u1", "b", time.Minute), click("3", "u1", "c", 2*time.Minute),
				click("4", "u1", "d", 3*time.Minute),
			},
			max:   2,
			want:  []Pair{{"text of a", "text of b"}, {"text of b", "text of c"}},
			stats: PairStats{Pairs: 2, Capped: 1},
		},
		{
			name: "unknown item",
			events: []feedback.Event{
				click("1", "u1", "a", 0), click("2", "u1", "zz", time.Minute),
			},
			stats: PairStats{UnknownItem: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewFeedbackLog()
			for _, ev := range tt.events {
				l.Add(ev)
			}
			got, st := l.CoEngagementPairs(text, tt.window, tt.max)
			if !slices.Equal(got, tt.want) || st != tt.stats {
				t.Errorf("pairs %q stats %+v, want %q %+v", got, st, tt.want, tt.stats)
			}
		})
	}
}

func TestReadEvents(t *testing.T) {
	line := func(ev feedback.Event) string {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Old on purpose: a log of history is accepted past the ingestion window.
	old := action("e1", feedback.TypeClick, "u1", "i1", "", "lamp", -400*24*time.Hour)
	input := strings.Join([]string{
		line(impression("e0", "u1", "r1", feedback.SurfaceSearch, "red shoes")),
		"",
		line(old),
		`{"type":"click","schema_version":1,"timestamp":"2026-03-01T12:00:00Z","user_id":"u1"}`,
		`{"type":"click","bogus":1}`,
		`not json`,
	}, "\n")
	var got []feedback.Event
	st, err := ReadEvents(context.Background(), strings.NewReader(input), func(ev feedback.Event) error {
		got = append(got, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 5 || st.Events != 2 || st.Invalid != 3 || len(got) != 2 || !got[1].Timestamp.Equal(old.Timestamp) {
		t.Fatalf("stats %+v, %d events", st, len(got))
	}
	if !strings.HasPrefix(st.FirstInvalid, "line 4: item_id") {
		t.Errorf("FirstInvalid = %q, want line 4's missing item_id", st.FirstInvalid)
	}

	stop := errors.New("stop")
	_, err = ReadEvents(context.Background(), strings.NewReader(input), func(feedback.Event) error { return stop })
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("err = %v, want the callback's error at line 1", err)
	}
}

func FuzzReadEvents(f *testing.F) {
	f.Add(`{"type":"click","schema_version":1,"timestamp":"2026-03-01T12:00:00Z","user_id":"u1","item_id":"i","query":"q"}`)
	f.Add(`{"type":"impression","schema_version":1,"timestamp":"2026-03-01T12:00:00Z","user_id":"u","request_id":"r","surface":"search","query":"q","items":[{"item_id":"a","position":0}]}`)
	f.Add("{}\n\n[1]")
	f.Fuzz(func(t *testing.T, s string) {
		l := NewFeedbackLog()
		st, err := ReadEvents(context.Background(), strings.NewReader(s), func(ev feedback.Event) error {
			l.Add(ev)
			return nil
		})
		if err == nil && st.Events+st.Invalid != st.Lines {
			t.Fatalf("stats %+v do not add up", st)
		}
		l.SearchPairs(func(string) (string, bool) { return "x", true })
		l.CoEngagementPairs(func(string) (string, bool) { return "x", true }, 0, 0)
	})
}
