package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestColumnFilter_MatchesFilters: the columns answer what the request's
// filters say of each catalog record, for random filters including names
// the catalog does not hold.
func TestColumnFilter_MatchesFilters(t *testing.T) {
	items := pricedItems()
	c := newColumns(items)
	rng := rand.New(rand.NewPCG(5, 6))
	cats := []string{"jazz", "toys", "heavy-metal", "wine", "absent", ""}
	brands := []string{"Blue", "Kindred", "Riff", "Softy", "absent", ""}
	pick := func(from []string) []string {
		var out []string
		for _, s := range from {
			if rng.IntN(3) == 0 {
				out = append(out, s)
			}
		}
		return out
	}
	price := func() *float64 {
		if rng.IntN(2) == 0 {
			return nil
		}
		v := float64(rng.IntN(30))
		return &v
	}
	for range 500 {
		f := Filters{Categories: pick(cats), Brands: pick(brands), PriceMin: price(), PriceMax: price()}
		cf := c.compile(&f, nil)
		for id, it := range items {
			want := (len(f.Categories) == 0 || slices.Contains(f.Categories, it.Category)) &&
				(len(f.Brands) == 0 || slices.Contains(f.Brands, it.Brand)) &&
				(f.PriceMin == nil || it.Price >= *f.PriceMin) && (f.PriceMax == nil || it.Price <= *f.PriceMax)
			if got := cf.match(int32(id)); got != want {
				t.Fatalf("filters %+v on %s (%s, %s, %v): %v, want %v", f, it.ID, it.Category, it.Brand, it.Price, got, want)
			}
		}
	}
}
