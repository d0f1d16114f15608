package rank

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/recsys-dev/recsys/catalog"
)

// Dict gives categories and brands stable numeric ids for the category_id
// and brand_id features: the sorted unique non-empty values, numbered from 1,
// with 0 for empty or unknown. Sorting (rather than first-seen order) makes
// the ids independent of catalog row order, so rebuilding the same catalog
// yields the same features. A Dict is read-only after construction and safe
// for concurrent use; it is stored in the bundle as JSON.
type Dict struct {
	categories []string
	brands     []string
	catID      map[string]int
	brandID    map[string]int
}

// NewDict collects the categories and brands of items.
func NewDict(items []catalog.Item) *Dict {
	var cats, brands []string
	for i := range items {
		if c := items[i].Category; c != "" {
			cats = append(cats, c)
		}
		if b := items[i].Brand; b != "" {
			brands = append(brands, b)
		}
	}
	slices.Sort(cats)
	slices.Sort(brands)
	return newDict(slices.Compact(cats), slices.Compact(brands))
}

func newDict(cats, brands []string) *Dict {
	d := &Dict{
		categories: slices.Clip(cats),
		brands:     slices.Clip(brands),
		catID:      make(map[string]int, len(cats)),
		brandID:    make(map[string]int, len(brands)),
	}
	for i, c := range cats {
		d.catID[c] = i + 1
	}
	for i, b := range brands {
		d.brandID[b] = i + 1
	}
	return d
}

// CategoryID is c's id, 0 when c is empty or unknown.
func (d *Dict) CategoryID(c string) int { return d.catID[c] }

// BrandID is b's id, 0 when b is empty or unknown.
func (d *Dict) BrandID(b string) int { return d.brandID[b] }

// Len is the number of categories and brands.
func (d *Dict) Len() (categories, brands int) { return len(d.categories), len(d.brands) }

type dictJSON struct {
	Categories []string `json:"categories"`
	Brands     []string `json:"brands"`
}

// MarshalJSON writes the sorted value lists; an id is its position + 1.
func (d *Dict) MarshalJSON() ([]byte, error) {
	return json.Marshal(dictJSON{Categories: nonNil(d.categories), Brands: nonNil(d.brands)})
}

// UnmarshalJSON reads what MarshalJSON wrote and refuses lists that are not
// sorted and unique, since ids would then differ from the build's.
func (d *Dict) UnmarshalJSON(b []byte) error {
	var v dictJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("decode dict: %w", err)
	}
	for _, l := range []struct {
		key  string
		vals []string
	}{{"categories", v.Categories}, {"brands", v.Brands}} {
		for i := 1; i < len(l.vals); i++ {
			if l.vals[i-1] >= l.vals[i] {
				return fmt.Errorf("decode dict: %s[%d]: values must be sorted and unique", l.key, i)
			}
		}
		if slices.Contains(l.vals, "") {
			return fmt.Errorf("decode dict: %s: empty value (0 is reserved for unknown)", l.key)
		}
	}
	*d = *newDict(v.Categories, v.Brands)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
