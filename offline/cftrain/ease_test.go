package cftrain

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestEASE compares the table with B = I - P/diag(P), P = (X'X + lambda
// I)^-1, computed here by Gauss-Jordan elimination on a small random
// matrix, and checks that only the ease_items most used items have rows.
func TestEASE(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const users, items, lambda = 40, 12, 2.0
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	x := make([][]float64, users)
	var in []Interaction
	for u := range x {
		x[u] = make([]float64, items)
		for i := range items {
			if rng.Float64() < 0.1+0.05*float64(i) {
				x[u][i] = 1
				in = append(in, Interaction{User: int32(u), Item: int32(i), Time: t0, Weight: float32(1 + rng.IntN(3))})
			}
		}
	}
	cfg := DefaultNeighboursConfig()
	cfg.Method, cfg.EaseLambda, cfg.EaseItems, cfg.TopN = MethodEASE, lambda, items, items
	n, _, err := TrainNeighbours(context.Background(), in, items, t0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Reference: invert G = X'X + lambda I.
	a := make([][]float64, items)
	for i := range a {
		a[i] = make([]float64, 2*items)
		for j := range items {
			for u := range users {
				a[i][j] += x[u][i] * x[u][j]
			}
		}
		a[i][i] += lambda
		a[i][items+i] = 1
	}
	for c := range items {
		p := a[c][c]
		for j := range a[c] {
			a[c][j] /= p
		}
		for r := range items {
			if r != c {
				f := a[r][c]
				for j := range a[r] {
					a[r][j] -= f * a[c][j]
				}
			}
		}
	}
	P := func(i, j int) float64 { return a[i][items+j] }
	for i := range int32(items) {
		ids, sims := n.Of(i)
		for k, j := range ids {
			want := -P(int(i), int(j)) / P(int(j), int(j))
			if math.Abs(float64(sims[k])-want) > 1e-4*math.Abs(want)+1e-6 {
				t.Fatalf("B(%d, %d) = %v, want %v", i, j, sims[k], want)
			}
			if k > 0 && sims[k] > sims[k-1] {
				t.Fatalf("row %d not best first: %v", i, sims)
			}
		}
		// Every positive entry is listed (top_n is the catalog).
		pos := 0
		for j := range items {
			if j != int(i) && -P(int(i), j)/P(j, j) > 0 {
				pos++
			}
		}
		if pos != len(ids) {
			t.Fatalf("row %d lists %d entries, %d are positive", i, len(ids), pos)
		}
	}

	// With ease_items 3 only the three most used items have rows.
	cfg.EaseItems = 3
	n, _, err = TrainNeighbours(context.Background(), in, items, t0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for i := range int32(items) {
		if ids, _ := n.Of(i); len(ids) > 0 {
			rows++
		}
	}
	if rows > 3 {
		t.Fatalf("%d items have rows with ease_items 3", rows)
	}
}
