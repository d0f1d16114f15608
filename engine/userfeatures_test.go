package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/catalog/itemlog"
	"github.com/recsys-dev/recsys/rank"
)

// TestFillUser_MatchesProfile: the user features read by column number
// equal rank.Layout.FillUser's from the profile's names, bit for bit, for
// every item of the view: unchanged ones, ones whose category, brand and
// tags a live change replaced with names the bundle does not know, new
// ones, before and after the changes are folded into the catalog.
func TestFillUser_MatchesProfile(t *testing.T) { withFolding(t, testFillUser) }

func testFillUser(t *testing.T) {
	log := &memItems{}
	e, g := liveEngine(t, log)
	withFeatures(t, g, rank.FeatUserCategoryAffinity, rank.FeatUserBrandAffinity, rank.FeatUserHistory, rank.FeatUserTagAffinity)
	rng := rand.New(rand.NewPCG(3, 4))
	tags := []string{"loud", "soft", "vinyl", "gift", "red", "new-tag"}
	pick := func() []string {
		var out []string
		for range rng.IntN(4) {
			out = append(out, tags[rng.IntN(len(tags))]) // repeats too
		}
		return out
	}
	for i := range g.items {
		g.items[i].Tags = pick()
	}
	g.cols = newColumns(g.items)
	check := func(step string) {
		t.Helper()
		v := g.live.Load()
		var hits []candidate
		var all []string
		for id := range v.n {
			if e := v.entry(id); e != nil && e.deleted {
				continue
			}
			hits = append(hits, candidate{id: id})
			all = append(all, v.item(id).ID)
		}
		for trial := range 20 {
			history := make([]string, 1+rng.IntN(6))
			for i := range history {
				history[i] = all[rng.IntN(len(all))]
			}
			switch trial {
			case 0:
				history = append(history, "not-an-item")
			case 1:
				history = nil // no history: every user feature zero
			case 2:
				history = []string{"not-an-item", "gone"}
			}
			f := g.layout.Len()
			// Both start from the same garbage, so a feature left unwritten
			// shows.
			got := make([]float32, len(hits)*f)
			for i := range got {
				got[i] = -7
			}
			fillUser(g, stageInput{v: v}, hits, got, history)
			cats, brands, tg := make([]string, len(history)), make([]string, len(history)), make([][]string, len(history))
			for i, id := range history {
				if j, ok := v.lookup(id); ok {
					it := v.item(j)
					cats[i], brands[i], tg[i] = it.Category, it.Brand, it.Tags
				}
			}
			p := rank.NewUserProfile(cats, brands, tg)
			want := make([]float32, len(hits)*f)
			for i := range want {
				want[i] = -7
			}
			for i, h := range hits {
				it := v.item(h.id)
				g.layout.FillUser(want[i*f:(i+1)*f], p, it.Category, it.Brand, it.Tags)
			}
			if !slices.Equal(got, want) {
				for i := range hits {
					if a, b := got[i*f:(i+1)*f], want[i*f:(i+1)*f]; !slices.Equal(a, b) {
						t.Fatalf("%s, history %v: item %s: %v, FillUser %v", step, history, v.item(hits[i].id).ID, a, b)
					}
				}
			}
		}
	}
	check("bundle")
	var cs []itemlog.Change
	for i := range 3 {
		it := g.items[i]
		it.Category, it.Brand, it.Tags = fmt.Sprintf("live-cat-%d", i), fmt.Sprintf("live-brand-%d", i%2), append(pick(), "live-only")
		cs = append(cs, upsert(it))
	}
	it := g.items[4]
	it.Tags = []string{"gift", "brand-new-tag"}
	cs = append(cs, upsert(it))
	newItem := catalog.Item{ID: "n1", Title: "new live item", Brand: "Riff", Category: "live-cat-0", Tags: []string{"loud", "live-only"}, Available: true}
	cs = append(cs, upsert(newItem))
	apply(t, e, log, cs...)
	apply(t, e, log, del(g.items[5].ID))
	check("after live changes")
}
