package engine

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/rules"
)

// folded is a generation's catalog with the attribute-only changes of its
// items folded in: a copy of the bundle's items, their columns and
// feature rows, which retrieval reads as densely as the bundle's own. A
// view's table then holds only what the bundle's indexes cannot serve:
// new, re-described and deleted items. Without folding, every changed
// item costs the filter a pointer chase and its own verdicts on every
// visit (measured on the 10k world after 200,000 stock and price changes:
// 0.46 ms of dense retrieval became 0.81).
type folded struct {
	items []catalog.Item
	cols  *columns
	rows  []float32 // nil when the engine serves features from a store
	// changed says which change made each folded item what it is.
	changed map[int32]changeMeta
	// bound is the filter rules bound to items (rebound when the rules
	// change: see view.filter).
	bound atomic.Pointer[rules.Bound]
}

type changeMeta struct {
	offset int64
	at     time.Time
	source string
	row    []float32 // written to the store again after it lost its rows
}

// foldMin and foldEvery bound how often a view is folded: once the table
// holds this many attribute-only entries (or an eighth of the bundle, if
// more), and no more than once a foldEvery, since a fold copies the whole
// catalog.
var (
	foldMin   = 256 // a variable for tests
	foldEvery = time.Second
)

// items is the catalog the view's unchanged and folded items come from.
func (v *view) items() []catalog.Item {
	if v.fold != nil {
		return v.fold.items
	}
	return v.g.items
}

func (v *view) columns() *columns {
	if v.fold != nil {
		return v.fold.cols
	}
	return v.g.cols
}

// filter is the live filter rules bound to the view's catalog.
func (v *view) filter() *rules.Bound {
	live := v.g.filter.Load()
	if v.fold == nil {
		return live
	}
	b := v.fold.bound.Load()
	if b.Set() != live.Set() {
		// The rules were reloaded since the fold: bind them here too.
		nb := live.Set().Bind(v.fold.items)
		if v.fold.bound.CompareAndSwap(b, nb) {
			return nb
		}
		return v.fold.bound.Load()
	}
	return b
}

// foldable reports whether e, the entry of item id, would be folded.
func (v *view) foldable(id int32, e *liveItem) bool {
	return e != nil && !e.deleted && !e.text && int(id) < len(v.g.items)
}

// foldDue reports whether v's table has grown enough attribute-only
// entries to fold them.
func (v *view) foldDue(now time.Time) bool {
	return v.stats.foldable >= max(foldMin, len(v.g.items)/8) && now.Sub(v.foldedAt) >= foldEvery
}

// foldInto folds nv's attribute-only entries into a new catalog copy and
// leaves the rest in a new table, their column codes renumbered against
// the new columns.
func (g *Generation) foldInto(nv *view, live *rules.Set, now time.Time) {
	items := slices.Clone(nv.items())
	var rows []float32
	if g.itemRows != nil {
		base := g.itemRows
		if nv.fold != nil && nv.fold.rows != nil {
			base = nv.fold.rows
		}
		rows = slices.Clone(base)
	}
	changed := map[int32]changeMeta{}
	if nv.fold != nil {
		changed = maps.Clone(nv.fold.changed)
	}
	fi := g.layout.ItemLen()
	var kept []int32
	nv.over.each(func(id int32, e *liveItem) {
		if !nv.foldable(id, e) {
			kept = append(kept, id)
			return
		}
		items[id] = e.item
		if rows != nil && e.row != nil {
			copy(rows[int(id)*fi:(int(id)+1)*fi], e.row)
		}
		changed[id] = changeMeta{e.offset, e.at, e.source, e.row}
	})
	f := &folded{items: items, cols: newColumns(items), rows: rows, changed: changed}
	f.bound.Store(live.Bind(items))
	nv.fold, nv.foldedAt, nv.stats.foldable = f, now, 0
	// The entries left keep their item, vectors and verdicts; their codes
	// follow the new columns.
	nv.cats, nv.brands = nil, nil
	noClone := func() {}
	tw := newTableWriter(table{}, int(nv.n))
	for _, id := range kept {
		e := *nv.over.get(id)
		e.cat = nv.code(f.cols.catIDs, &nv.cats, e.item.Category, noClone)
		e.brand = nv.code(f.cols.brandIDs, &nv.brands, e.item.Brand, noClone)
		tw.set(id, &e)
	}
	nv.over = tw.t
}

// folded is the change folded into item id, if any.
func (v *view) folded(id int32) (changeMeta, bool) {
	if v.fold == nil {
		return changeMeta{}, false
	}
	m, ok := v.fold.changed[id]
	return m, ok
}
