package engine

import "github.com/recsys-dev/recsys/catalog"

// columns hold the item attributes a request's structured filters test,
// one array per attribute indexed by item number, so filtering inside the
// graph walk reads a few bytes per item rather than its catalog record.
// Categories, brands and tags are numbered per generation; an item's tag
// numbers are tagCodes[tagOff[i]:tagOff[i+1]], in its order.
type columns struct {
	category, brand          []int32
	price                    []float64
	catIDs, brandIDs, tagIDs map[string]int32
	tagOff, tagCodes         []int32
}

func newColumns(items []catalog.Item) *columns {
	c := &columns{category: make([]int32, len(items)), brand: make([]int32, len(items)), price: make([]float64, len(items)),
		catIDs: map[string]int32{}, brandIDs: map[string]int32{}, tagIDs: map[string]int32{},
		tagOff: make([]int32, len(items)+1)}
	n := 0
	for i := range items {
		n += len(items[i].Tags)
	}
	c.tagCodes = make([]int32, 0, n)
	number := func(ids map[string]int32, s string) int32 {
		id, ok := ids[s]
		if !ok {
			id = int32(len(ids))
			ids[s] = id
		}
		return id
	}
	for i := range items {
		c.category[i] = number(c.catIDs, items[i].Category)
		c.brand[i] = number(c.brandIDs, items[i].Brand)
		c.price[i] = items[i].Price
		for _, t := range items[i].Tags {
			c.tagCodes = append(c.tagCodes, number(c.tagIDs, t))
		}
		c.tagOff[i+1] = int32(len(c.tagCodes))
	}
	return c
}

// tags are bundle item id's tag numbers.
func (c *columns) tags(id int32) []int32 { return c.tagCodes[c.tagOff[id]:c.tagOff[id+1]] }

// columnFilter is a request's Filters resolved against the columns: the
// allowed category and brand numbers as sets (nil: any), and the price
// bounds.
type columnFilter struct {
	c                *columns
	cats, brands     []bool
	priceLo, priceHi float64
	price            bool
}

// compile resolves f against the bundle's names and those the live
// catalog v added; a name neither holds allows no item.
func (c *columns) compile(f *Filters, v *view) columnFilter {
	out := columnFilter{c: c}
	set := func(ids, extra map[string]int32, names []string) []bool {
		if len(names) == 0 {
			return nil
		}
		allowed := make([]bool, len(ids)+len(extra))
		for _, n := range names {
			if id, ok := ids[n]; ok {
				allowed[id] = true
			} else if id, ok := extra[n]; ok {
				allowed[id] = true
			}
		}
		return allowed
	}
	var cats, brands map[string]int32
	if v != nil {
		cats, brands = v.cats, v.brands
	}
	out.cats, out.brands = set(c.catIDs, cats, f.Categories), set(c.brandIDs, brands, f.Brands)
	if f.PriceMin != nil || f.PriceMax != nil {
		out.price = true
		out.priceLo, out.priceHi = -1e308, 1e308
		if f.PriceMin != nil {
			out.priceLo = *f.PriceMin
		}
		if f.PriceMax != nil {
			out.priceHi = *f.PriceMax
		}
	}
	return out
}

// match reports whether bundle item id passes the filters.
func (f *columnFilter) match(id int32) bool {
	if f.cats != nil && !f.cats[f.c.category[id]] {
		return false
	}
	if f.brands != nil && !f.brands[f.c.brand[id]] {
		return false
	}
	if f.price {
		p := f.c.price[id]
		return p >= f.priceLo && p <= f.priceHi
	}
	return true
}

// matchValues reports whether an item of these column codes and price
// passes the filters.
func (f *columnFilter) matchValues(cat, brand int32, price float64) bool {
	if f.cats != nil && (int(cat) >= len(f.cats) || !f.cats[cat]) {
		return false
	}
	if f.brands != nil && (int(brand) >= len(f.brands) || !f.brands[brand]) {
		return false
	}
	if f.price {
		return price >= f.priceLo && price <= f.priceHi
	}
	return true
}
