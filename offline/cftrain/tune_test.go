package cftrain_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/offline/cftrain"
)

const year = 365 * 24 * time.Hour

// TestMovieLensTune is the search behind the defaults, kept to reproduce
// it: RECSYS_CF_TUNE=neighbours or =als logs NDCG@10 and Recall@50 of
// each setting tried (minutes; not run otherwise).
func TestMovieLensTune(t *testing.T) {
	which := os.Getenv("RECSYS_CF_TUNE")
	if which == "" {
		t.Skip("set RECSYS_CF_TUNE=neighbours or als to run the tuning grid")
	}
	s := loadSplit(t)
	ctx := context.Background()
	if which == "neighbours" {
		base := cftrain.DefaultNeighboursConfig()
		var cfgs []cftrain.NeighboursConfig
		vary := func(f func(c *cftrain.NeighboursConfig)) {
			c := base
			f(&c)
			cfgs = append(cfgs, c)
		}
		vary(func(c *cftrain.NeighboursConfig) {})
		for _, a := range []float64{0.3, 0.4, 0.5, 0.6, 0.8} {
			vary(func(c *cftrain.NeighboursConfig) { c.Alpha = a })
		}
		for _, sh := range []float64{0, 2, 5, 10, 20} {
			vary(func(c *cftrain.NeighboursConfig) { c.Shrink = sh })
		}
		for _, n := range []int{50, 100, 200, 400} {
			vary(func(c *cftrain.NeighboursConfig) { c.TopN = n })
		}
		for _, h := range []time.Duration{year, 10 * year} {
			vary(func(c *cftrain.NeighboursConfig) { c.HalfLife = h })
		}
		for _, m := range []int{0, 50, 100, 200, 500} {
			vary(func(c *cftrain.NeighboursConfig) { c.MaxUserItems = m })
		}
		for _, c := range cfgs {
			n, rep, err := cftrain.TrainNeighbours(ctx, s.train, s.items, s.now, c)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []float64{0, 5, 20} {
				ndcg, recall := s.evalNeighbours(n, h)
				t.Logf("top_n %d alpha %.2f shrink %g half_life %v max_user_items %d | serving half-life %g: NDCG@10 %.4f Recall@50 %.4f (%.2fs)",
					c.TopN, c.Alpha, c.Shrink, c.HalfLife, c.MaxUserItems, h, ndcg, recall, rep.Seconds)
			}
		}
		return
	}
	base := cftrain.DefaultALSConfig()
	var cfgs []cftrain.ALSConfig
	vary := func(f func(c *cftrain.ALSConfig)) {
		c := base
		f(&c)
		cfgs = append(cfgs, c)
	}
	vary(func(c *cftrain.ALSConfig) {})
	for _, l := range []float64{1, 5, 10, 30, 50} {
		vary(func(c *cftrain.ALSConfig) { c.Lambda = l })
	}
	for _, a := range []float64{0.5, 1, 5, 10} {
		vary(func(c *cftrain.ALSConfig) { c.Alpha = a })
	}
	for _, f := range []int{16, 32, 128} {
		vary(func(c *cftrain.ALSConfig) { c.Factors = f })
	}
	for _, it := range []int{5, 15, 25} {
		vary(func(c *cftrain.ALSConfig) { c.Iterations = it })
	}
	for _, h := range []time.Duration{year, 10 * year} {
		vary(func(c *cftrain.ALSConfig) { c.HalfLife = h })
	}
	for _, c := range cfgs {
		f, rep, err := cftrain.TrainALS(ctx, s.train, s.users, s.items, s.now, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []float64{0, 10} {
			ndcg, recall := s.evalALS(f, h)
			t.Logf("factors %d iterations %d lambda %g alpha %g half_life %v | fold-in half-life %g: NDCG@10 %.4f Recall@50 %.4f (%.1fs)",
				c.Factors, c.Iterations, c.Lambda, c.Alpha, c.HalfLife, h, ndcg, recall, rep.Seconds)
		}
	}
}
