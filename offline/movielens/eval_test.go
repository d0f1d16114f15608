package movielens

import (
	"math"
	"testing"
)

func TestNDCG(t *testing.T) {
	liked := func(ids ...string) map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	tests := []struct {
		name  string
		ids   []string
		liked map[string]bool
		want  float64
	}{
		{"best first", []string{"a", "b"}, liked("a"), 1},
		{"second", []string{"b", "a"}, liked("a"), 1 / math.Log2(3)},
		{"missed by retrieval counts in the ideal", []string{"a", "b"}, liked("a", "z"), 1 / (1 + 1/math.Log2(3))},
		{"past the cut-off scores nothing", []string{"b", "c", "a"}, liked("a"), 0},
		{"no positive", []string{"a"}, liked(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NDCG(tt.ids, tt.liked, min(2, len(tt.ids))); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("NDCG = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSplitByTime(t *testing.T) {
	rs := map[int][]Rating{1: {{1, 10, 4, 5}, {1, 11, 4, 1}, {1, 12, 4, 3}, {1, 13, 4, 2}, {1, 14, 4, 4}}}
	past, future := splitByTime(rs, 0.2)
	if len(past[1]) != 4 || len(future[1]) != 1 || future[1][0].Movie != 10 || past[1][0].Movie != 11 {
		t.Fatalf("past %v future %v", past, future)
	}
}
