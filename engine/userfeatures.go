package engine

import (
	"sync"

	"github.com/recsys-dev/recsys/rank"
)

// fillUser writes the user features of every candidate from the user's
// history (item ids, most recent first): what rank.Layout.FillUser writes
// from the profile of the history's items, read by column number for the
// items the view has unchanged, so a candidate costs array reads rather
// than a hash of each of its attribute names.
func fillUser(g *Generation, in stageInput, hits []candidate, x []float32, history []string) {
	f := g.layout.Len()
	cats, brands, tags := make([]string, len(history)), make([]string, len(history)), make([][]string, len(history))
	for i, id := range history {
		if j, ok := in.v.lookup(id); ok {
			it := in.v.item(j)
			cats[i], brands[i], tags[i] = it.Category, it.Brand, it.Tags
		}
	}
	p := rank.NewUserProfile(cats, brands, tags)
	if p.Actions == 0 {
		// No history the view knows: every weight is zero, so is every
		// candidate's user features.
		for i := range hits {
			g.layout.SetUser(x[i*f:(i+1)*f], 0, 0, 0, 0)
		}
		return
	}
	cols := in.v.columns()
	w := weighUser(p, cols, in.v)
	defer w.put()
	wantTags := g.layout.WantsTags() && len(p.Tags) > 0 // else every sum is zero
	for i, h := range hits {
		dst := x[i*f : (i+1)*f]
		if e := in.v.entry(h.id); e != nil {
			// A changed or new item: its codes are the view's, its tags
			// may be names the columns do not number.
			t := 0.0
			if wantTags {
				for _, tag := range e.item.Tags {
					t += p.Tags[tag]
				}
			}
			g.layout.SetUser(dst, w.of(w.cat, e.cat), w.of(w.brand, e.brand), t, p.Actions)
			continue
		}
		t := 0.0
		if wantTags {
			for _, c := range cols.tags(h.id) {
				t += w.tag[c]
			}
		}
		g.layout.SetUser(dst, w.cat[cols.category[h.id]], w.brand[cols.brand[h.id]], t, p.Actions)
	}
}

// userWeights is a profile's weights by the numbers of a view's columns
// (categories and brands the bundle does not know after the bundle's, as
// view.code numbers them), zero where the profile has none. The arrays
// are pooled; set lists the entries to zero again.
type userWeights struct {
	cat, brand, tag []float64
	set             [3][]int32
}

var userWeightsPool = sync.Pool{New: func() any { return new(userWeights) }}

func weighUser(p *rank.UserProfile, cols *columns, v *view) *userWeights {
	w := userWeightsPool.Get().(*userWeights)
	w.cat = sized(w.cat, len(cols.catIDs)+len(v.cats))
	w.brand = sized(w.brand, len(cols.brandIDs)+len(v.brands))
	w.tag = sized(w.tag, len(cols.tagIDs))
	put := func(k int, dst []float64, base, extra map[string]int32, from map[string]float64) {
		for name, wt := range from {
			c, ok := base[name]
			if !ok {
				if c, ok = extra[name]; !ok {
					continue
				}
			}
			dst[c] = wt
			w.set[k] = append(w.set[k], c)
		}
	}
	put(0, w.cat, cols.catIDs, v.cats, p.Categories)
	put(1, w.brand, cols.brandIDs, v.brands, p.Brands)
	put(2, w.tag, cols.tagIDs, nil, p.Tags)
	return w
}

// of is code c's weight in a, zero for a code past it.
func (w *userWeights) of(a []float64, c int32) float64 {
	if c < 0 || int(c) >= len(a) {
		return 0
	}
	return a[c]
}

func (w *userWeights) put() {
	for k, a := range [3][]float64{w.cat, w.brand, w.tag} {
		for _, c := range w.set[k] {
			a[c] = 0
		}
		w.set[k] = w.set[k][:0]
	}
	userWeightsPool.Put(w)
}

// sized is a zeroed a of length n: a's own array when it is long enough
// (put keeps it zeroed), a new one otherwise.
func sized(a []float64, n int) []float64 {
	if cap(a) >= n {
		return a[:n]
	}
	return make([]float64, n)
}
