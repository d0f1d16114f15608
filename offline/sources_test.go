package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/index/cf"
	"github.com/recsys-dev/recsys/internal/ort/orttest"
	"github.com/recsys-dev/recsys/world"
)

// memEvents replays a slice, as the events topic would.
type memEvents []feedback.Event

func (m memEvents) Replay(_ context.Context, fn func(feedback.Event) error) error {
	for _, e := range m {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// TestBuild_Sources: a build with an event log trains the sources from its
// user actions only (impressions, unknown items and below-threshold logs
// leave them out) into verified bundle files the serving package loads.
func TestBuild_Sources(t *testing.T) {
	orttest.Init(t)
	cat := writeWorld(t, 1000)
	items, err := catalog.ReadFile(cat)
	if err != nil {
		t.Fatal(err)
	}
	// Two tastes: even users use items 0-9, odd users items 10-19.
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var evs memEvents
	for u := range 40 {
		for k := range 6 {
			i := (u*7+k*3)%10 + 10*(u%2)
			evs = append(evs, feedback.Event{Type: feedback.TypeClick, UserID: fmt.Sprint("u", u), ItemID: world.ItemID(i),
				Timestamp: t0.Add(time.Duration(u*10+k) * time.Minute)})
		}
	}
	evs = append(evs, feedback.Event{Type: feedback.TypeImpression, UserID: "u1", ItemID: world.ItemID(3), Timestamp: t0},
		feedback.Event{Type: feedback.TypePurchase, UserID: "u1", ItemID: "not-in-the-catalog", Timestamp: t0})

	root := t.TempDir()
	o := options(t, cat, root)
	o.Events, o.Sources = evs, DefaultSourcesConfig()
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Sources
	if s == nil || s.Interactions != 240 || s.Users != 40 || s.UsedItems != 20 || s.Neighbours == nil || s.Factors == nil || s.FactorsIndex == nil || s.Popular == nil {
		t.Fatalf("sources %+v, want 240 interactions of 40 users on 20 items and every file", s)
	}
	dir := filepath.Join(root, m.Version)
	if _, err := bundle.Open(dir); err != nil { // every checksum, the sources' files included
		t.Fatal(err)
	}
	for _, f := range []string{bundle.NeighboursFile, bundle.FactorsFile, bundle.FactorsIndexFile, bundle.PopularFile} {
		if _, ok := m.File(f); !ok {
			t.Errorf("manifest lacks %s", f)
		}
	}
	nb, err := cf.LoadNeighbours(filepath.Join(dir, bundle.NeighboursFile), len(items))
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := nb.Of(int32(slices.IndexFunc(items, func(it catalog.Item) bool { return it.ID == world.ItemID(2) })))
	if len(ids) == 0 {
		t.Fatal("item 2 has no neighbours")
	}
	odd := map[string]bool{}
	for i := 10; i < 20; i++ {
		odd[world.ItemID(i)] = true
	}
	for _, j := range ids {
		if odd[items[j].ID] {
			t.Fatalf("item 2 (even users') lists %s (odd users')", items[j].ID)
		}
	}
	// log_interactions is the items' use: 0 for an unused item.
	rows, err := bundle.ReadFeatureRows(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(m.ItemFeatureNames, "log_interactions")
	if col < 0 || rows[0][col] <= 0 || rows[150][col] != 0 {
		t.Fatalf("log_interactions column %d: item 0 %v, item 150 %v", col, rows[0][col], rows[150][col])
	}

	// Below min_interactions: popularity only.
	o.Sources.MinInteractions = 1000
	m, err = Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Sources; s == nil || s.Popular == nil || s.Neighbours != nil || s.Factors != nil {
		t.Fatalf("sources %+v, want popularity only", s)
	}
}

func TestSourcesConfig_Validate(t *testing.T) {
	c := DefaultSourcesConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Weights = map[string]float32{"impression": 1, feedback.TypeClick: 0}
	c.Neighbours.TopN, c.ALS.Factors = 0, 0
	err := c.Validate()
	for _, want := range []string{"weights.impression: not a user action type", "weights.click: must be > 0", "neighbours.top_n:", "als.factors:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v does not say %q", err, want)
		}
	}
}
