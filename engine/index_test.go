package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recsys-dev/recsys/index"
)

func TestEngine_IndexStrategyMetrics(t *testing.T) {
	items := testItems()
	reg := prometheus.NewRegistry()
	e := newEngine(t, Deps{Features: storeFor(items), Rules: compileRules(t), Registerer: reg})
	// Before any bundle: nothing to report, and no panic.
	if got := searchesByStrategy(t, reg); len(got) != 0 {
		t.Fatalf("before a bundle: %v", got)
	}
	g, _ := newGenOn(t, index.Config{Backend: index.BackendHNSW, M: 4, EfConstruction: 16, EfSearch: 16}, "v1", items, &fakeScorer{weights: []float32{1, 0}})
	e.publish(g)
	for range 3 {
		if _, err := e.Search(context.Background(), SearchRequest{Query: "guitar album", K: 3}); err != nil {
			t.Fatal(err)
		}
	}
	// The catalog is smaller than the candidate depth, so every search
	// scans exactly (k >= Len()).
	got := searchesByStrategy(t, reg)
	want := map[string]float64{"exact": 3, "filtered-graph": 0, "graph": 0, "graph-then-exact": 0}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("series %v, want %v", got, want)
		}
	}
}

func TestApplySearch(t *testing.T) {
	vecs := make([]float32, 0, 64*testDim)
	for i := range 64 {
		vecs = append(vecs, wordVector(strings.Repeat("w", i%7+1)+" item")...)
	}
	ix, err := index.Build(context.Background(), index.Config{Backend: index.BackendHNSW, M: 4, EfConstruction: 16, EfSearch: 16, ExactBelow: 0.02}, testDim, vecs)
	if err != nil {
		t.Fatal(err)
	}
	h := ix.(*index.HNSW)
	applySearch(h, nil)
	if ef, eb := h.Settings(); ef != 16 || eb != 0.02 {
		t.Fatalf("nil options changed the snapshot's settings: %d, %v", ef, eb)
	}
	applySearch(h, &SearchOptions{EfSearch: 300, ExactBelow: 0})
	if ef, eb := h.Settings(); ef != 300 || eb != 0 {
		t.Fatalf("settings = %d, %v; want 300 and 0 (0 is a setting, not 'keep')", ef, eb)
	}
	applySearch(&index.Exact{}, &SearchOptions{EfSearch: 5}) // no such settings: ignored
}

func searchesByStrategy(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "recsys_index_searches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}
