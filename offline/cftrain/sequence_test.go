package cftrain

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestTrainNeighbours_Sequence checks the table against the definition on
// a hand-worked example: u0 takes A, B, C in that order, u1 B then A, given
// out of time order and with the item numbers against the time order.
func TestTrainNeighbours_Sequence(t *testing.T) {
	const A, B, C = 0, 1, 2
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	in := []Interaction{
		{User: 1, Item: A, Time: at(2), Weight: 1},
		{User: 0, Item: C, Time: at(3), Weight: 1},
		{User: 0, Item: A, Time: at(1), Weight: 1},
		{User: 1, Item: B, Time: at(1), Weight: 1},
		{User: 0, Item: B, Time: at(2), Weight: 1},
	}
	cfg := DefaultNeighboursConfig()
	cfg.Method, cfg.Window, cfg.Back, cfg.Alpha, cfg.MaxUserItems = MethodSequence, 1, 0.5, 0.5, 0
	n, rep, err := TrainNeighbours(context.Background(), in, 4, t0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// n(A) = n(B) = 2, n(C) = 1. Row A: B follows it in u0 (1) and
	// precedes it in u1 (0.5); C is two places away. Row B: A precedes it
	// in u0 (0.5) and follows it in u1 (1), C follows it in u0 (1). Row C:
	// B precedes it (0.5).
	r2 := math.Sqrt2
	want := map[int32][]nb{
		A: {{B, float32(1.5 / 2)}},
		B: {{A, float32(1.5 / 2)}, {C, float32(1 / r2)}},
		C: {{B, float32(0.5 / r2)}},
		3: nil,
	}
	for item, w := range want {
		ids, sims := n.Of(item)
		if len(ids) != len(w) {
			t.Fatalf("row %d: %v %v, want %v", item, ids, sims, w)
		}
		for k := range w {
			if ids[k] != w[k].id || math.Abs(float64(sims[k]-w[k].sim)) > 1e-6 {
				t.Errorf("row %d entry %d: %d %.6f, want %d %.6f", item, k, ids[k], sims[k], w[k].id, w[k].sim)
			}
		}
	}
	if rep.Users != 2 || rep.Interactions != 5 || rep.Pairs != 6 {
		t.Errorf("report %+v", rep)
	}
	// A wider window reaches C from A, and no predecessors without Back.
	cfg.Window, cfg.Back = 2, 0
	n, _, err = TrainNeighbours(context.Background(), in, 4, t0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ids, sims := n.Of(A); len(ids) != 2 || ids[0] != C || ids[1] != B || math.Abs(float64(sims[0])-1/r2) > 1e-6 || math.Abs(float64(sims[1])-0.5) > 1e-6 {
		t.Errorf("row A with window 2, no back: %v %v", ids, sims)
	}
	if ids, _ := n.Of(C); len(ids) != 0 {
		t.Errorf("row C has only predecessors, none counted: %v", ids)
	}
}
