package realtime

import (
	"math"
	"testing"
	"time"
)

func TestParseFormat_RoundTrip(t *testing.T) {
	at := time.UnixMilli(1_790_000_000_123)
	s := Stats{Impressions: 1234.5678, Clicks: 0.25, At: at}
	got, ok := Parse(Format(s))
	if !ok || got.Impressions != s.Impressions || got.Clicks != s.Clicks || !got.At.Equal(at) {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, ok, s)
	}
	// The updater's Lua writes "%.9g %.9g %.0f".
	if got, ok := Parse("3 1.5 1790000000000"); !ok || got.Impressions != 3 || got.Clicks != 1.5 || got.At.UnixMilli() != 1790000000000 {
		t.Fatalf("Lua-formatted value: %+v, %v", got, ok)
	}
	// With the offsets the updater appends.
	if got, ok := Parse("3 1.5 1790000000000 0:17 2:4"); !ok || got.Impressions != 3 || got.At.UnixMilli() != 1790000000000 {
		t.Fatalf("value with offsets: %+v, %v", got, ok)
	}
}

func TestParse_Refuses(t *testing.T) {
	for _, v := range []string{"", "1 2", "a 2 3", "-1 2 3", "1 -2 3", "1 2 x", "NaN 1 2", "1 Inf 2", "1 2 NaN"} {
		if s, ok := Parse(v); ok {
			t.Errorf("Parse(%q) = %+v, want refused", v, s)
		}
	}
}

func TestDecayTo(t *testing.T) {
	at := time.Unix(1_790_000_000, 0)
	s := Stats{Impressions: 8, Clicks: 2, At: at}
	d := s.DecayTo(at.Add(2*time.Hour), time.Hour)
	if math.Abs(d.Impressions-2) > 1e-12 || math.Abs(d.Clicks-0.5) > 1e-12 {
		t.Fatalf("two half-lives: %+v, want 2 and 0.5", d)
	}
	if d := s.DecayTo(at.Add(-time.Minute), time.Hour); d.Impressions != 8 || d.Clicks != 2 {
		t.Fatalf("reference in the future must not grow the counts: %+v", d)
	}
}

func TestKeys_ShareSlots(t *testing.T) {
	// A user's history and its offset carry the same hash tag, so the
	// updater's script over both runs on one Redis Cluster node.
	for _, k := range []string{UserKey("p", "u1"), UserOffsetKey("p", "u1")} {
		if want := "{u1}"; k[len(k)-len(want):] != want {
			t.Errorf("key %q does not end in the hash tag %s", k, want)
		}
	}
	if k := ItemKey("p", "i9"); k != "p:d:{i9}" {
		t.Errorf("ItemKey = %q", k)
	}
}
