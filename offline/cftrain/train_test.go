package cftrain

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/index/cf"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// planted is two user groups with disjoint tastes: users below half only
// touch items below half, the others only the rest.
func planted(rng *rand.Rand, users, items, perUser int) []Interaction {
	var in []Interaction
	for u := range users {
		lo := 0
		if u >= users/2 {
			lo = items / 2
		}
		for range perUser {
			in = append(in, Interaction{User: int32(u), Item: int32(lo + rng.IntN(items/2)), Time: t0.Add(-time.Duration(rng.IntN(1000)) * time.Hour), Weight: 1})
		}
	}
	return in
}

func TestTrainNeighbours_Planted(t *testing.T) {
	in := planted(rand.New(rand.NewPCG(1, 1)), 200, 100, 10)
	cfg := DefaultNeighboursConfig()
	cfg.TopN = 20
	n, rep, err := TrainNeighbours(context.Background(), in, 100, t0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Users != 200 || rep.Items != 100 || rep.Pairs == 0 {
		t.Fatalf("report %+v", rep)
	}
	for i := range int32(100) {
		ids, _ := n.Of(i)
		if len(ids) != 20 {
			t.Fatalf("item %d has %d neighbours, want 20", i, len(ids))
		}
		for _, j := range ids {
			if (i < 50) != (j < 50) {
				t.Fatalf("item %d (group %v) has neighbour %d from the other group", i, i < 50, j)
			}
		}
	}
	hits := n.Recommend([]int32{1, 2, 3}, nil, 30, nil, nil)
	for _, h := range hits {
		if h.ID >= 50 {
			t.Fatalf("group-A history recommends group-B item %d", h.ID)
		}
	}
}

func TestTrainALS_Planted(t *testing.T) {
	in := planted(rand.New(rand.NewPCG(2, 2)), 200, 100, 10)
	// Two factors, one per group: within a group the items are random
	// noise, which more factors would partly fit (and a short history
	// would then reach into the other group's noise).
	cfg := DefaultALSConfig()
	cfg.Factors, cfg.Iterations = 2, 10
	f, rep, err := TrainALS(context.Background(), in, 200, 100, t0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Users != 200 || rep.Items != 100 || f.Len() != 100 || f.Dim() != 2 {
		t.Fatalf("report %+v, factors %d x %d", rep, f.Len(), f.Dim())
	}
	for _, hist := range [][]int32{{1, 2, 3}, {60, 70, 99}, {49}} {
		x := make([]float32, f.Dim())
		if !f.FoldIn(hist, nil, x) {
			t.Fatal("fold-in failed")
		}
		order := make([]int32, 100)
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortFunc(order, func(a, b int32) int {
			return -cmpf(f.Score(x, a), f.Score(x, b))
		})
		group := hist[0] < 50
		for r, i := range order[:50] {
			if (i < 50) != group {
				t.Fatalf("history %v: rank %d is item %d, from the other group", hist, r, i)
			}
		}
	}
}

func cmpf(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// bruteNeighbours is the definition over a dense matrix: decay, sum
// duplicates, c(i,j) = sum_u w_ui w_uj, sim = c/(n_i^a n_j^(1-a)) *
// c/(c+shrink), top n best first ties by item.
func bruteNeighbours(in []Interaction, users, items int, now time.Time, cfg NeighboursConfig) [][]nb {
	w := make([][]float64, users)
	for u := range w {
		w[u] = make([]float64, items)
	}
	for _, x := range in {
		d := float64(x.Weight)
		if age := now.Sub(x.Time); cfg.HalfLife > 0 && age > 0 {
			d *= math.Pow(2, -age.Hours()/cfg.HalfLife.Hours())
		}
		w[x.User][x.Item] += float64(float32(d))
	}
	n := make([]float64, items)
	for u := range users {
		for i := range items {
			n[i] += w[u][i]
		}
	}
	rows := make([][]nb, items)
	for i := range items {
		var row []nb
		for j := range items {
			var c float64
			for u := range users {
				c += w[u][i] * w[u][j]
			}
			if j != i && c > 0 {
				s := c / (math.Pow(n[i], cfg.Alpha) * math.Pow(n[j], 1-cfg.Alpha)) * c / (c + cfg.Shrink)
				row = append(row, nb{int32(j), float32(s)})
			}
		}
		rows[i] = sortedRow(row)[:min(len(row), cfg.TopN)]
	}
	return rows
}

func TestTrainNeighbours_MatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const users, items = 30, 25
	var in []Interaction
	for range 300 { // dense enough for repeats, ties and pruned rows
		in = append(in, Interaction{
			User: int32(rng.IntN(users)), Item: int32(rng.IntN(items)),
			Time: t0.Add(-time.Duration(rng.IntN(100)) * time.Hour), Weight: float32(1 + rng.IntN(3)),
		})
	}
	for _, cfg := range []NeighboursConfig{
		{Method: MethodCosine, TopN: 5, Alpha: 0.5, Shrink: 0},
		{Method: MethodCosine, TopN: 8, Alpha: 0.8, Shrink: 3, HalfLife: 24 * time.Hour, Workers: 3},
		{Method: MethodCosine, TopN: 100, Alpha: 0, Shrink: 1},
	} {
		n, _, err := TrainNeighbours(context.Background(), in, items, t0, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteNeighbours(in, users, items, t0, cfg)
		for i := range int32(items) {
			ids, sims := n.Of(i)
			if len(ids) != len(want[i]) {
				t.Fatalf("%+v: item %d has %d neighbours, want %d", cfg, i, len(ids), len(want[i]))
			}
			for p := range ids {
				if ids[p] != want[i][p].id || math.Abs(float64(sims[p]-want[i][p].sim)) > 1e-5*float64(want[i][p].sim) {
					t.Fatalf("%+v: item %d position %d: (%d, %v), want (%d, %v)", cfg, i, p, ids[p], sims[p], want[i][p].id, want[i][p].sim)
				}
			}
		}
	}
}

func TestTrainNeighbours_MaxUserItems(t *testing.T) {
	// One user with 10 items, the newest last: capped to 3, only the
	// three newest co-occur.
	var in []Interaction
	for i := range 10 {
		in = append(in, Interaction{User: 7, Item: int32(i), Time: t0.Add(time.Duration(i) * time.Hour), Weight: 1})
	}
	cfg := DefaultNeighboursConfig()
	cfg.MaxUserItems = 3
	n, rep, err := TrainNeighbours(context.Background(), in, 10, t0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Interactions != 3 || rep.Pairs != 6 {
		t.Fatalf("report %+v, want 3 interactions and 6 pairs", rep)
	}
	if ids, _ := n.Of(9); !slices.Equal(ids, []int32{7, 8}) {
		t.Fatalf("neighbours of 9 = %v, want [7 8]", ids)
	}
	if ids, _ := n.Of(0); len(ids) != 0 {
		t.Fatalf("capped-away item 0 has neighbours %v", ids)
	}
}

func TestTrain_Deterministic(t *testing.T) {
	in := planted(rand.New(rand.NewPCG(4, 4)), 300, 200, 15)
	var als []*cf.Factors
	var nbs []*cf.Neighbours
	for _, workers := range []int{1, 3, 1} {
		cfg := DefaultALSConfig()
		cfg.Factors, cfg.Iterations, cfg.Workers, cfg.HalfLife = 16, 3, workers, 100*time.Hour
		f, _, err := TrainALS(context.Background(), in, 300, 200, t0, cfg)
		if err != nil {
			t.Fatal(err)
		}
		als = append(als, f)
		ncfg := DefaultNeighboursConfig()
		ncfg.Workers = workers
		n, _, err := TrainNeighbours(context.Background(), in, 200, t0, ncfg)
		if err != nil {
			t.Fatal(err)
		}
		nbs = append(nbs, n)
	}
	for k := 1; k < len(als); k++ {
		for i := range int32(200) {
			if !slices.Equal(als[0].Item(i), als[k].Item(i)) {
				t.Fatalf("run %d: item %d factors differ", k, i)
			}
			a, as := nbs[0].Of(i)
			b, bs := nbs[k].Of(i)
			if !slices.Equal(a, b) || !slices.Equal(as, bs) {
				t.Fatalf("run %d: item %d neighbours differ", k, i)
			}
		}
	}
	cfg := DefaultALSConfig()
	cfg.Factors, cfg.Iterations, cfg.Seed = 16, 3, 99
	other, _, err := TrainALS(context.Background(), in, 300, 200, t0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other.Item(0), als[0].Item(0)) {
		t.Fatal("another seed gave the same factors")
	}
}

func TestTrain_Cancel(t *testing.T) {
	in := planted(rand.New(rand.NewPCG(5, 5)), 2000, 1000, 30)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := TrainNeighbours(ctx, in, 1000, t0, DefaultNeighboursConfig()); !errors.Is(err, context.Canceled) {
		t.Fatalf("neighbours with a cancelled context: err = %v", err)
	}
	if _, _, err := TrainALS(ctx, in, 2000, 1000, t0, DefaultALSConfig()); !errors.Is(err, context.Canceled) {
		t.Fatalf("als with a cancelled context: err = %v", err)
	}
	// Cancelled mid-run: a thousand iterations would take minutes.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	cfg := DefaultALSConfig()
	cfg.Iterations = maxIterations
	start := time.Now()
	_, _, err := TrainALS(ctx, in, 2000, 1000, t0, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("als cancelled mid-run: err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("als took %v to notice the cancel", d)
	}
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string // "" for valid
	}{
		{"neighbours default", DefaultNeighboursConfig().Validate(), ""},
		{"als default", DefaultALSConfig().Validate(), ""},
		{"top_n", func() error { c := DefaultNeighboursConfig(); c.TopN = 0; return c.Validate() }(), "top_n:"},
		{"half_life", func() error { c := DefaultNeighboursConfig(); c.HalfLife = -time.Hour; return c.Validate() }(), "half_life:"},
		{"alpha", func() error { c := DefaultNeighboursConfig(); c.Alpha = 1.5; return c.Validate() }(), "alpha:"},
		{"alpha NaN", func() error { c := DefaultNeighboursConfig(); c.Alpha = math.NaN(); return c.Validate() }(), "alpha:"},
		{"shrink", func() error { c := DefaultNeighboursConfig(); c.Shrink = math.Inf(1); return c.Validate() }(), "shrink:"},
		{"max_user_items", func() error { c := DefaultNeighboursConfig(); c.MaxUserItems = -1; return c.Validate() }(), "max_user_items:"},
		{"workers", func() error { c := DefaultNeighboursConfig(); c.Workers = -1; return c.Validate() }(), "workers:"},
		{"method", func() error { c := DefaultNeighboursConfig(); c.Method = "bm25"; return c.Validate() }(), "method:"},
		{"window", func() error {
			c := DefaultNeighboursConfig()
			c.Method, c.Window = MethodSequence, 0
			return c.Validate()
		}(), "window:"},
		{"back", func() error {
			c := DefaultNeighboursConfig()
			c.Method, c.Back = MethodSequence, 1.5
			return c.Validate()
		}(), "back:"},
		{"factors", func() error { c := DefaultALSConfig(); c.Factors = cf.MaxDim + 1; return c.Validate() }(), "factors:"},
		{"iterations", func() error { c := DefaultALSConfig(); c.Iterations = 0; return c.Validate() }(), "iterations:"},
		{"lambda", func() error { c := DefaultALSConfig(); c.Lambda = 0; return c.Validate() }(), "lambda:"},
		{"als alpha", func() error { c := DefaultALSConfig(); c.Alpha = -1; return c.Validate() }(), "alpha:"},
		{"als half_life", func() error { c := DefaultALSConfig(); c.HalfLife = -1; return c.Validate() }(), "half_life:"},
		{"als workers", func() error { c := DefaultALSConfig(); c.Workers = maxWorkers + 1; return c.Validate() }(), "workers:"},
		{"two at once", func() error { c := DefaultALSConfig(); c.Factors, c.Lambda = 0, -1; return c.Validate() }(), "factors:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			switch {
			case c.want == "" && c.err != nil:
				t.Fatalf("valid config refused: %v", c.err)
			case c.want != "" && (c.err == nil || !strings.HasPrefix(c.err.Error(), c.want)):
				t.Fatalf("err = %v, want it to start with %q", c.err, c.want)
			}
		})
	}
	c := DefaultALSConfig()
	c.Factors, c.Lambda = 0, -1
	if err := c.Validate(); !strings.Contains(err.Error(), "lambda:") {
		t.Fatalf("two bad fields, one reported: %v", err)
	}
}

func TestTrain_BadInput(t *testing.T) {
	ok := Interaction{User: 0, Item: 0, Time: t0, Weight: 1}
	cases := []struct {
		name string
		x    Interaction
		want string
	}{
		{"item out of range", Interaction{User: 0, Item: 5, Weight: 1}, "item 5"},
		{"negative item", Interaction{User: 0, Item: -1, Weight: 1}, "item -1"},
		{"negative user", Interaction{User: -1, Item: 0, Weight: 1}, "user -1"},
		{"user out of range (als)", Interaction{User: 3, Item: 0, Weight: 1}, "user 3"},
		{"NaN weight", Interaction{Weight: float32(math.NaN())}, "weight"},
		{"negative weight", Interaction{Weight: -1}, "weight"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := []Interaction{ok, c.x}
			_, _, err := TrainALS(context.Background(), in, 3, 5, t0, DefaultALSConfig())
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "interaction 1") {
				t.Fatalf("als: err = %v, want ErrInput naming interaction 1 and %q", err, c.want)
			}
			if strings.HasPrefix(c.name, "user out of range") {
				return // neighbours take any user number
			}
			_, _, err = TrainNeighbours(context.Background(), in, 5, t0, DefaultNeighboursConfig())
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("neighbours: err = %v, want ErrInput naming %q", err, c.want)
			}
		})
	}
}
