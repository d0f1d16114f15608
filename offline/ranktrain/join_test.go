package ranktrain

import (
	"bytes"
	"encoding/csv"
	"slices"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/feedback"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func impression(req, user string, at time.Time, names []string, items ...string) feedback.Event {
	ev := feedback.Event{Type: feedback.TypeImpression, RequestID: req, UserID: user, Timestamp: at, FeatureNames: names}
	for i, id := range items {
		ev.Items = append(ev.Items, feedback.ImpressionItem{ItemID: id, Position: i, Features: []float32{float32(i), 1}})
	}
	return ev
}

func action(typ, req, user, item string, at time.Time) feedback.Event {
	return feedback.Event{Type: typ, RequestID: req, UserID: user, ItemID: item, Timestamp: at}
}

func TestJoiner_Queries(t *testing.T) {
	names := []string{"f0", "f1"}
	tests := []struct {
		name   string
		events []feedback.Event
		want   map[string][]float32 // request id -> labels in shown order
		stats  JoinStats
	}{
		{
			name: "click and purchase by request id",
			events: []feedback.Event{
				impression("r1", "u1", t0, names, "a", "b", "c"),
				action(feedback.TypeClick, "r1", "u1", "b", t0.Add(time.Minute)),
				action(feedback.TypePurchase, "r1", "u1", "c", t0.Add(2*time.Minute)),
			},
			want:  map[string][]float32{"r1": {0, 1, 2}},
			stats: JoinStats{Impressions: 1, Actions: 2, Attributed: 2},
		},
		{
			name: "best action wins, in any order",
			events: []feedback.Event{
				action(feedback.TypePurchase, "r1", "u1", "a", t0.Add(2*time.Minute)),
				impression("r1", "u1", t0, names, "a", "b"),
				action(feedback.TypeClick, "r1", "u1", "a", t0.Add(time.Minute)),
			},
			want:  map[string][]float32{"r1": {2, 0}},
			stats: JoinStats{Impressions: 1, Actions: 2, Attributed: 2},
		},
		{
			name: "without request id the latest impression of the user in the window gets it",
			events: []feedback.Event{
				impression("r1", "u1", t0, names, "a", "b"),
				impression("r2", "u1", t0.Add(10*time.Minute), names, "b", "a"),
				impression("r3", "u2", t0.Add(11*time.Minute), names, "a"),
				action(feedback.TypeClick, "", "u1", "a", t0.Add(12*time.Minute)),
			},
			want:  map[string][]float32{"r1": {0, 0}, "r2": {0, 1}, "r3": {0}},
			stats: JoinStats{Impressions: 3, Actions: 1, Attributed: 1},
		},
		{
			name: "outside the window or before the impression is not attributed",
			events: []feedback.Event{
				impression("r1", "u1", t0, names, "a"),
				action(feedback.TypeClick, "r1", "u1", "a", t0.Add(31*time.Minute)),
				action(feedback.TypeClick, "", "u1", "a", t0.Add(-time.Second)),
				action(feedback.TypeClick, "r1", "u1", "zzz", t0.Add(time.Second)),
			},
			want:  map[string][]float32{"r1": {0}},
			stats: JoinStats{Impressions: 1, Actions: 3, Unattributed: 3},
		},
		{
			name: "other feature lists, missing vectors and duplicates are dropped",
			events: []feedback.Event{
				impression("r1", "u1", t0, []string{"f1", "f0"}, "a"),
				impression("r2", "u1", t0, nil, "a"),
				impression("r3", "u1", t0, names, "a"),
				impression("r3", "u1", t0, names, "a"),
				{Type: feedback.TypeDwell, UserID: "u1", ItemID: "a", Timestamp: t0},
			},
			want:  map[string][]float32{"r3": {0}},
			stats: JoinStats{Impressions: 4, FeatureMismatch: 1, NoFeatures: 1, Duplicates: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := NewJoiner(names, 30*time.Minute)
			for _, ev := range tt.events {
				j.Add(ev)
			}
			qs, stats := j.Queries()
			if stats != tt.stats {
				t.Errorf("stats = %+v, want %+v", stats, tt.stats)
			}
			got := map[string][]float32{}
			for i, q := range qs {
				got[q.RequestID] = q.Labels
				if i > 0 && q.Time.Before(qs[i-1].Time) {
					t.Errorf("queries not oldest first")
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("queries %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if !slices.Equal(got[k], v) {
					t.Errorf("%s labels %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestWriteRows(t *testing.T) {
	j := NewJoiner([]string{"f0", "f1"}, time.Hour)
	j.Add(impression("r1", "u1", t0, []string{"f0", "f1"}, "a", "b"))
	j.Add(action(feedback.TypeClick, "r1", "u1", "b", t0.Add(time.Second)))
	explore := impression("r2", "u1", t0.Add(time.Minute), []string{"f0", "f1"}, "c")
	explore.Explore = true
	j.Add(explore)
	qs, _ := j.Queries()
	if len(qs) != 2 || qs[0].Explore || !qs[1].Explore {
		t.Fatalf("explore flags not copied: %+v", qs)
	}
	var buf bytes.Buffer
	if err := WriteRows(&buf, []string{"f0", "f1"}, qs); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"request_id", "timestamp", "user_id", "item_id", "position", "explore", "label", "f0", "f1"},
		{"r1", "2026-11-01T12:00:00Z", "u1", "a", "0", "0", "0", "0", "1"},
		{"r1", "2026-11-01T12:00:00Z", "u1", "b", "1", "0", "1", "1", "1"},
		{"r2", "2026-11-01T12:01:00Z", "u1", "c", "0", "1", "0", "0", "1"},
	}
	if len(recs) != len(want) {
		t.Fatalf("rows %v", recs)
	}
	for i := range want {
		if !slices.Equal(recs[i], want[i]) {
			t.Errorf("row %d = %v, want %v", i, recs[i], want[i])
		}
	}
	qs = qs[:1]
	d := Dataset([]string{"f0", "f1"}, qs, 0)
	if err := d.Validate(); err != nil || !slices.Equal(d.Labels, []float32{0, 1}) || !slices.Equal(d.Groups, []int{2}) || d.Weights != nil {
		t.Fatalf("dataset %+v, %v", d, err)
	}
	// Inverse propensities of a 1/(position+1) examination model.
	if d := Dataset([]string{"f0", "f1"}, qs, 1); !slices.Equal(d.Weights, []float32{1, 2}) {
		t.Fatalf("weights %v, want [1 2]", d.Weights)
	}
}
