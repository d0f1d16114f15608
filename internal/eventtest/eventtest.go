// Package eventtest holds what the event log's and the counter updater's
// tests share: a seeded stream of valid events and a metric reader. It is
// imported by tests only.
package eventtest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recsys-dev/recsys/feedback"
)

// Events returns n valid events spread over users u0..u4 and over three
// types (impression, click, purchase). Position counts each user's events,
// so per-user order can be checked after a round trip.
func Events(n int) []feedback.Event {
	now := time.Now().UTC().Truncate(time.Millisecond)
	perUser := map[string]int{}
	evs := make([]feedback.Event, n)
	for i := range evs {
		user := fmt.Sprintf("u%d", i%5)
		seq := perUser[user]
		perUser[user]++
		ev := feedback.Event{
			EventID: fmt.Sprintf("ev-%04d", i), SchemaVersion: feedback.SchemaVersion,
			Timestamp: now.Add(time.Duration(i) * time.Millisecond), UserID: user, RequestID: fmt.Sprintf("req-%d", i/3),
		}
		switch i % 3 {
		case 0:
			ev.Type, ev.Surface, ev.Query, ev.Bundle = feedback.TypeImpression, feedback.SurfaceSearch, "q", "v1"
			ev.FeatureNames = []string{"seq", "score"}
			ev.Items = []feedback.ImpressionItem{
				{ItemID: "a", Position: seq, Score: 0.5, Features: []float32{float32(seq), 0.25}},
				{ItemID: "b", Position: seq + 1, Score: 0.25, Features: []float32{float32(seq), 0.125}},
			}
		case 1:
			pos := seq
			ev.Type, ev.ItemID, ev.Position = feedback.TypeClick, fmt.Sprintf("item-%d", i), &pos
		default:
			pos, v := seq, float64(i)+0.5
			ev.Type, ev.ItemID, ev.Position, ev.Value = feedback.TypePurchase, fmt.Sprintf("item-%d", i), &pos, &v
		}
		evs[i] = ev
	}
	return evs
}

// Gathered returns the counter or gauge value, or the histogram sample count, of
// the series of name with exactly labels; 0 when there is none.
func Gathered(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
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
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// Equal compares events with their timestamps compared by instant (a
// round trip through JSON changes the location).
func Equal(a, b feedback.Event) bool {
	if !a.Timestamp.Equal(b.Timestamp) {
		return false
	}
	a.Timestamp, b.Timestamp = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}
