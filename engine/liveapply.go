package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/catalog/itemlog"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/rules"
)

// ItemLog is the items topic as the engine reads it (itemlog.Log).
type ItemLog interface {
	// Replay calls fn for the changes at offsets [from, to), in order.
	Replay(ctx context.Context, from, to int64, bad func(int64, error), fn func(itemlog.Change) error) error
	// Follow calls fn with every batch from offset from on, until ctx ends.
	Follow(ctx context.Context, from int64, bad func(int64, error), fn func([]itemlog.Change, int64) error) error
	// End is the offset the next change will get.
	End(ctx context.Context) (int64, error)
}

// LiveConfig is engine.live: the item changes applied between rebuilds.
type LiveConfig struct {
	// RebuildShare is the share of the bundle's items inserted or
	// re-embedded since it was built past which the engine warns (and
	// recsys_items_rebuild_due says 1) that a rebuild is due: the delta
	// graph and lexical index cost more per query as they grow.
	RebuildShare float64 `yaml:"rebuild_share"`
	// ReplayBatch is how many changes a replay applies per view.
	ReplayBatch int `yaml:"replay_batch"`
}

// DefaultLiveConfig is what config.yaml spells out.
func DefaultLiveConfig() LiveConfig { return LiveConfig{RebuildShare: 0.2, ReplayBatch: 2000} }

// Validate reports every bad value with its key.
func (c LiveConfig) Validate() error {
	var errs []error
	if !(c.RebuildShare > 0 && c.RebuildShare <= 10) {
		errs = append(errs, fmt.Errorf("rebuild_share: must be in (0, 10], got %v", c.RebuildShare))
	}
	if c.ReplayBatch < 1 || c.ReplayBatch > 100000 {
		errs = append(errs, fmt.Errorf("replay_batch: must be in 1..100000, got %d", c.ReplayBatch))
	}
	return errors.Join(errs...)
}

// itemsAtLoad bounds reading the items topic's end when the first bundle
// loads; past it the bundle goes live and the applier catches up (the
// topic unreachable meanwhile, flagged).
const itemsAtLoad = 3 * time.Second

// deltaCapacity is the delta graph's first size; it doubles when full.
const deltaCapacity = 1024

// liveWriter is the applier's own state for one generation, touched only
// under Engine.itemsMu.
type liveWriter struct {
	// feat computes a changed item's feature row as the build did.
	feat     rank.Config
	dict     *rank.Dict
	builtAt  time.Time
	warned   bool
	graphCfg index.Config
}

// ErrItemsCatchingUp is what ItemsReady reports while a replica has not yet
// applied the item changes written before it started.
var ErrItemsCatchingUp = errors.New("applying the items topic's changes since the bundle")

// ApplyItems applies a batch of the items topic, ending before offset
// next, to the live generation and publishes the result. Changes below
// the generation's offset (the bundle holds them) are skipped, so a batch
// may be applied twice.
func (e *Engine) ApplyItems(ctx context.Context, changes []itemlog.Change, next int64) error {
	e.itemsMu.Lock()
	defer e.itemsMu.Unlock()
	g := e.current.Load()
	if g == nil {
		return ErrNotReady
	}
	if err := e.applyTo(ctx, g, changes, next); err != nil {
		e.m.itemsFailed.Inc()
		return err
	}
	e.itemsNext.Store(max(e.itemsNext.Load(), next))
	return nil
}

// applyTo builds g's next view from its current one and publishes it.
func (e *Engine) applyTo(ctx context.Context, g *Generation, changes []itemlog.Change, next int64) error {
	v := g.live.Load()
	if next <= v.next {
		return nil
	}
	w := g.writer
	nv := *v
	tw := newTableWriter(v.over, int(v.n))
	// The maps of new ids and names are shared with the published view
	// until the batch adds to them.
	cloned := false
	cloneNames := func() {
		if !cloned {
			cloned = true
			nv.added, nv.cats, nv.brands = maps.Clone(v.added), maps.Clone(v.cats), maps.Clone(v.brands)
			if nv.added == nil {
				nv.added = map[string]int32{}
			}
		}
	}
	// entries are the batch's changes, the latest per item.
	entries := map[int32]*liveItem{}
	// embed are the changes whose text needs a vector, in offset order;
	// each gets the next delta-graph node when the change is read, so the
	// graph's nodes follow the topic's order however it is batched.
	var embed []pendingVec
	nodes := int32(len(v.denseIDs))
	// lexTouched are the items whose text the batch put into a delta or
	// took out of one.
	var lexTouched []int32
	var upserted []int32
	now := e.now()
	bound := g.filter.Load()
	var renv *rules.Env
	if bound != nil {
		renv = bound.Set().NewEnv("", 0, "", now)
	}
	for i := range changes {
		c := &changes[i]
		if c.Offset < v.next {
			continue
		}
		id, known := nv.number(c.ID)
		prev := entries[id]
		if prev == nil && known {
			prev = tw.t.get(id)
		}
		switch c.Op {
		case itemlog.OpDelete:
			if !known {
				e.m.itemsApplied.WithLabelValues("delete_unknown").Inc()
				continue
			}
			ent := &liveItem{vec: -1, deleted: true, offset: c.Offset, at: c.At, source: c.Source}
			if prev != nil {
				ent.item, ent.cat, ent.brand = prev.item, prev.cat, prev.brand
			} else {
				cols := nv.columns()
				ent.item = nv.items()[id]
				ent.cat, ent.brand = cols.category[id], cols.brand[id]
			}
			if prev != nil && prev.text {
				lexTouched = append(lexTouched, id)
			}
			entries[id] = ent
			tw.set(id, ent)
			e.m.itemsApplied.WithLabelValues("delete").Inc()
		case itemlog.OpUpsert:
			if !known {
				cloneNames()
				id = nv.n
				nv.n++
				nv.added[c.ID] = id
			}
			ent := &liveItem{item: *c.Item, vec: -1, offset: c.Offset, at: c.At, source: c.Source}
			cols := nv.columns()
			ent.cat = nv.code(cols.catIDs, &nv.cats, c.Item.Category, cloneNames)
			ent.brand = nv.code(cols.brandIDs, &nv.brands, c.Item.Brand, cloneNames)
			switch {
			case int(id) < len(g.items) && catalog.SameText(&g.items[id], c.Item):
				// Back to (or still) the bundle's text: its vector and
				// lexical entry are current again.
			case prev != nil && !prev.deleted && catalog.SameText(&prev.item, c.Item):
				ent.vec, ent.text = prev.vec, prev.text
			default:
				ent.text, ent.vec = true, nodes
				nodes++
				embed = append(embed, pendingVec{id, ent})
				lexTouched = append(lexTouched, id)
			}
			if prev != nil && prev.text && !ent.text {
				lexTouched = append(lexTouched, id) // back to the bundle's text
			}
			var uses float32 // a bundle item keeps its interactions; a new one has none
			if int(id) < len(g.uses) {
				uses = g.uses[id]
			}
			ent.row = make([]float32, len(w.feat.Features))
			rank.ItemRow(ent.row, w.feat.Features, c.Item, w.dict, w.builtAt, uses)
			if bound != nil {
				ent.verdicts = bound.Verdicts(&ent.item, renv)
			}
			entries[id] = ent
			tw.set(id, ent)
			upserted = append(upserted, id)
			e.m.itemsApplied.WithLabelValues("upsert").Inc()
		}
		if !c.At.IsZero() {
			e.m.itemsLag.Observe(max(now.Sub(c.At).Seconds(), 0))
		}
		nv.stats.lastChange = c.At
	}
	if err := e.embedLive(ctx, g, &nv, embed); err != nil {
		return err
	}
	if len(lexTouched) > 0 && g.lexical != nil {
		if err := e.rebuildLexDelta(ctx, g, &nv, tw, lexTouched); err != nil {
			return err
		}
	}
	for id, ent := range entries {
		old := v.over.get(id)
		if _, before := nv.folded(id); old == nil && !before {
			nv.stats.changed++
		}
		nv.stats.deleted += b2i(ent.deleted) - b2i(old != nil && old.deleted)
		nv.stats.foldable += b2i(v.foldable(id, ent)) - b2i(v.foldable(id, old))
	}
	nv.over, nv.next, nv.stats.applied = tw.t, next, now
	nv.stats.inserted = int(nv.n) - len(g.items)
	if nv.foldDue(now) {
		start := time.Now()
		g.foldInto(&nv, bound.Set(), now)
		e.m.stage.WithLabelValues("items", "fold").Observe(time.Since(start).Seconds())
	}
	e.writeLiveFeatures(ctx, g, entries, upserted)
	g.live.Store(&nv)
	e.liveGauges(g, &nv)
	return nil
}

// code numbers a category or brand: the bundle's code, or one after them
// for a name the bundle does not know (calling clone before it adds one).
func (v *view) code(base map[string]int32, extra *map[string]int32, name string, clone func()) int32 {
	if c, ok := base[name]; ok {
		return c
	}
	if c, ok := (*extra)[name]; ok {
		return c
	}
	clone()
	if *extra == nil {
		*extra = map[string]int32{}
	}
	c := int32(len(base) + len(*extra))
	(*extra)[name] = c
	return c
}

// pendingVec is a change whose text is embedded at the end of its batch,
// into node ent.vec of the delta graph.
type pendingVec struct {
	id  int32
	ent *liveItem
}

// embedLive embeds the new texts of a batch in one call and adds them to
// the delta graph, growing it when full.
func (e *Engine) embedLive(ctx context.Context, g *Generation, nv *view, todo []pendingVec) error {
	if len(todo) == 0 {
		return nil
	}
	texts := make([]string, len(todo))
	for i, p := range todo {
		texts[i] = p.ent.item.Text()
	}
	start := time.Now()
	vecs, err := g.encoder.Encode(ctx, texts)
	if err != nil {
		return fmt.Errorf("embed %d changed items: %w", len(texts), err)
	}
	e.m.stage.WithLabelValues("items", "embed").Observe(time.Since(start).Seconds())
	if nv.dense != nil && nv.dense.Len() != len(nv.denseIDs) {
		// A failed batch left nodes no view knows: go on from a copy
		// without them.
		grown, err := growDelta(g, nv.dense, len(nv.denseIDs))
		if err != nil {
			return err
		}
		nv.dense = grown
	}
	// Appended in place: a published view reads only the first
	// len(its denseIDs), which this never writes.
	ids := nv.denseIDs
	for i, p := range todo {
		if nv.dense == nil || nv.dense.Len() >= nv.dense.Cap() {
			grown, err := growDelta(g, nv.dense, len(ids))
			if err != nil {
				return err
			}
			nv.dense = grown
		}
		local, err := nv.dense.Add(vecs[i])
		if err != nil {
			return fmt.Errorf("insert item %q into the delta graph: %w", p.ent.item.ID, err)
		}
		if local != p.ent.vec {
			return fmt.Errorf("delta graph gave node %d to item %q, planned %d", local, p.ent.item.ID, p.ent.vec)
		}
		ids = append(ids, p.id)
	}
	nv.denseIDs = ids
	return nil
}

// growDelta returns a delta graph twice the size of old (or the first
// one) holding old's first n nodes with the same numbers. old stays as it
// is for the views that hold it.
func growDelta(g *Generation, old *index.Growing, n int) (*index.Growing, error) {
	capacity := deltaCapacity
	if old != nil {
		capacity = 2 * old.Cap()
	}
	grown, err := index.NewGrowing(g.writer.graphCfg, g.Manifest.Dim, capacity)
	if err != nil {
		return nil, fmt.Errorf("delta graph: %w", err)
	}
	for i := range n {
		if _, err := grown.Add(old.Vector(int32(i))); err != nil {
			return nil, fmt.Errorf("delta graph: %w", err)
		}
	}
	return grown, nil
}

// lexSmallMin is the least bound on the small delta lexical index, which
// is rebuilt with every batch that changes a text; past its bound every
// delta text is indexed anew in the large one and the small one starts
// empty. The bound is four times the square root of the large index's
// size (at least lexSmallMin): with L texts in the large index a batch
// costs the analysis of at most 4 sqrt(L) texts, and a rebuild of the
// large one, L texts, comes once every 4 sqrt(L) changes, so both costs
// grow with sqrt(L) per change rather than L. (Measured at 10,000 changes
// a second, 1% of them texts: a fixed 512 spent a tenth of a core
// re-analysing the small index.)
var lexSmallMin = 64 // a variable for tests

func lexSmallMax(large int) int { return max(lexSmallMin, int(4*math.Sqrt(float64(large)))) }

// rebuildLexDelta re-indexes the delta texts after a batch changed some:
// the small index over the texts changed since the large one was built,
// or both when the small one would outgrow lexSmallMax. Texts are indexed
// in item-number order, so every replica builds the same indexes.
func (e *Engine) rebuildLexDelta(ctx context.Context, g *Generation, nv *view, tw *tableWriter, touched []int32) error {
	current := func(id int32) bool {
		ent := tw.t.get(id)
		return ent != nil && ent.text && !ent.deleted
	}
	small := map[int32]bool{}
	for _, id := range nv.small.ids {
		small[id] = true
	}
	for _, id := range touched {
		small[id] = true
	}
	var ids []int32
	for id := range small {
		if current(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) > lexSmallMax(len(nv.large.ids)) {
		ids = ids[:0]
		tw.t.each(func(id int32, ent *liveItem) {
			if ent.text && !ent.deleted {
				ids = append(ids, id)
			}
		})
		start := time.Now()
		large, err := lexTier(ctx, g, tw, ids)
		if err != nil {
			return err
		}
		e.m.stage.WithLabelValues("items", "lexical_large").Observe(time.Since(start).Seconds())
		nv.large, nv.small = large, lexDelta{}
		return nil
	}
	slices.Sort(ids)
	start := time.Now()
	sm, err := lexTier(ctx, g, tw, ids)
	if err != nil {
		return err
	}
	e.m.stage.WithLabelValues("items", "lexical_small").Observe(time.Since(start).Seconds())
	nv.small = sm
	return nil
}

// lexTier indexes the current texts of ids (sorted) with the bundle's
// analysis and statistics.
func lexTier(ctx context.Context, g *Generation, tw *tableWriter, ids []int32) (lexDelta, error) {
	if len(ids) == 0 {
		return lexDelta{}, nil
	}
	lex, err := g.lexical.Delta(ctx, len(ids), func(d, f int) string { return index.ItemField(&tw.t.get(ids[d]).item, f) })
	if err != nil {
		return lexDelta{}, fmt.Errorf("delta lexical index: %w", err)
	}
	pos := make(map[int32]int32, len(ids))
	for i, id := range ids {
		pos[id] = int32(i)
	}
	return lexDelta{lex: lex, ids: ids, pos: pos}, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeLiveFeatures writes the upserted items' rows into the feature
// store, when the engine serves item features from one.
func (e *Engine) writeLiveFeatures(ctx context.Context, g *Generation, entries map[int32]*liveItem, upserted []int32) {
	if e.deps.Seeder == nil || len(upserted) == 0 {
		return
	}
	var ids []string
	var rows [][]float32
	done := map[int32]bool{}
	for _, id := range upserted {
		if ent := entries[id]; !done[id] && !ent.deleted {
			done[id] = true
			ids = append(ids, ent.item.ID)
			rows = append(rows, ent.row)
		}
	}
	if err := e.deps.Seeder.WriteItems(ctx, g.Version(), ids, rows); err != nil {
		// Served from the store, these items get default features
		// (flagged) until the next seed check writes them.
		e.m.seeds.WithLabelValues("failed").Inc()
		e.log.Warn("write changed items' features to the feature store", "items", len(ids), "error", err)
		g.unseeded.Store(true)
		e.kickSeed()
	}
}

// liveGauges exports the live view's size and warns once when a rebuild
// is due.
func (e *Engine) liveGauges(g *Generation, v *view) {
	e.m.itemsOffset.Set(float64(v.next))
	e.m.itemsTombstones.Set(float64(v.stats.deleted))
	e.m.itemsInserted.Set(float64(v.stats.inserted))
	e.m.itemsChanged.Set(float64(v.stats.changed))
	grown := len(v.denseIDs)
	due := float64(grown) > e.cfg.Live.RebuildShare*float64(len(g.items))
	if due {
		e.m.itemsRebuildDue.Set(1)
		if !g.writer.warned {
			g.writer.warned = true
			e.log.Warn("the live catalog has grown past engine.live.rebuild_share since the bundle: time to rebuild",
				"bundle", g.Version(), "items", len(g.items), "embedded_since", grown, "share", e.cfg.Live.RebuildShare)
		}
	} else {
		e.m.itemsRebuildDue.Set(0)
	}
}

// replayProgressEvery is how often a long replay logs its progress.
var replayProgressEvery = 5 * time.Second

// replayItems applies the items topic from g's offset up to to before g
// goes live, logging its progress every replayProgressEvery (a bundle
// built long ago replays every change since: 8M took 30-60 s here).
func (e *Engine) replayItems(ctx context.Context, g *Generation, to int64) error {
	from := g.live.Load().next
	if from >= to {
		return nil
	}
	var batch []itemlog.Change
	start := time.Now()
	last := start
	flush := func(next int64) error {
		err := e.applyTo(ctx, g, batch, next)
		batch = batch[:0]
		if now := time.Now(); err == nil && next < to && now.Sub(last) >= replayProgressEvery {
			last = now
			done := next - from
			e.log.Info("replaying the items topic", "bundle", g.Version(), "offset", next, "to", to,
				"done_percent", 100*done/(to-from), "per_second", int(float64(done)/now.Sub(start).Seconds()))
		}
		return err
	}
	err := e.deps.Items.Replay(ctx, from, to, e.badItem, func(c itemlog.Change) error {
		batch = append(batch, c)
		if len(batch) >= e.cfg.Live.ReplayBatch {
			return flush(c.Offset + 1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay the items topic from %d: %w", from, err)
	}
	return flush(to)
}

// badItem counts and logs an undecodable items record (it is skipped).
func (e *Engine) badItem(offset int64, err error) {
	e.m.itemsApplied.WithLabelValues("invalid").Inc()
	e.log.Warn("skipping an invalid items-topic record", "offset", offset, "error", err)
}

// RunItems follows the items topic and applies it to the live generation
// until ctx ends. Without an items log it returns at once.
func (e *Engine) RunItems(ctx context.Context) error {
	if e.deps.Items == nil {
		return nil
	}
	// The end at start is what this replica must apply before it is
	// ready; while the topic cannot be read it serves what it has.
	for attempt := 0; ctx.Err() == nil; attempt++ {
		end, err := e.deps.Items.End(ctx)
		if err == nil || errors.Is(err, itemlog.ErrNoTopic) {
			e.itemsTarget.Store(end)
			e.itemsUnreachable.Store(false)
			break
		}
		if !e.itemsUnreachable.Swap(true) {
			e.log.Warn("items topic unreachable: serving the bundle's catalog and the changes applied so far until it answers", "error", err)
		}
		sleepCtx(ctx, min(time.Duration(attempt+1)*time.Second, 10*time.Second))
	}
	go e.watchItems(ctx)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		from := e.itemsNext.Load()
		if from < 0 {
			g := e.current.Load()
			if g == nil {
				return ErrNotReady
			}
			from = g.live.Load().next
		}
		err := e.deps.Items.Follow(ctx, from, e.badItem, func(batch []itemlog.Change, next int64) error {
			e.itemsUnreachable.Store(false)
			return e.ApplyItems(ctx, batch, next)
		})
		if ctx.Err() != nil {
			return nil
		}
		e.log.Warn("applying the items topic failed; retrying", "offset", from, "error", err)
		sleepCtx(ctx, min(time.Duration(attempt+1)*time.Second, 10*time.Second))
	}
	return nil
}

// itemsWatch is how often the topic's end is read to tell a quiet topic
// from an unreachable one (the follower cannot: it waits either way).
var itemsWatch = 5 * time.Second // a variable for tests

// watchItems reads the topic's end every itemsWatch until ctx ends:
// readiness says when it cannot, and recsys_items_lag_records how far the
// live catalog trails it.
func (e *Engine) watchItems(ctx context.Context) {
	t := time.NewTicker(itemsWatch)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wctx, cancel := context.WithTimeout(ctx, itemsWatch/2)
		end, err := e.deps.Items.End(wctx)
		cancel()
		switch {
		case err == nil:
			if e.itemsUnreachable.Swap(false) {
				e.log.Info("items topic reachable again")
			}
			e.m.itemsLagRecords.Set(float64(max(end-e.ItemsOffset(), 0)))
		case errors.Is(err, itemlog.ErrNoTopic) || ctx.Err() != nil:
		default:
			if !e.itemsUnreachable.Swap(true) {
				e.log.Warn("items topic unreachable: item changes written meanwhile are applied when it answers", "error", err)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ItemsReady reports, for readiness checks, whether the replica has
// applied the item changes that were written before it started.
func (e *Engine) ItemsReady(context.Context) error {
	if e.deps.Items == nil {
		return nil
	}
	n := e.itemsNext.Load()
	if n < 0 { // nothing applied yet: the live generation's own offset
		n = e.ItemsOffset()
	}
	if t := e.itemsTarget.Load(); n < t {
		return fmt.Errorf("%w: at offset %d of %d", ErrItemsCatchingUp, n, t)
	}
	return nil
}

// ItemsReachable reports whether the applier can read the items topic.
func (e *Engine) ItemsReachable(context.Context) error {
	if e.deps.Items != nil && e.itemsUnreachable.Load() {
		return errors.New("items topic unreachable: item changes written since are not applied")
	}
	return nil
}

// LiveItem is an item as the live generation has it.
type LiveItem struct {
	Item catalog.Item `json:"item"`
	// Source is "bundle" (as built) or "delta" (changed since, by the
	// items-topic record at Offset, accepted at At by a Source request).
	Source  string    `json:"source"`
	Bundle  string    `json:"bundle"`
	Offset  *int64    `json:"offset,omitempty"`
	At      time.Time `json:"at,omitzero"`
	Request string    `json:"request,omitempty"`
	Deleted bool      `json:"deleted,omitempty"`
}

// Item returns the live version of item id; a deleted one is found with
// Deleted set.
func (e *Engine) Item(id string) (LiveItem, bool) {
	g := e.current.Load()
	if g == nil {
		return LiveItem{}, false
	}
	v := g.live.Load()
	n, ok := v.number(id)
	if !ok {
		return LiveItem{}, false
	}
	if ent := v.entry(n); ent != nil {
		off := ent.offset
		return LiveItem{Item: ent.item, Source: "delta", Bundle: g.Version(), Offset: &off, At: ent.at, Request: ent.source, Deleted: ent.deleted}, true
	}
	if m, ok := v.folded(n); ok {
		off := m.offset
		return LiveItem{Item: v.fold.items[n], Source: "delta", Bundle: g.Version(), Offset: &off, At: m.at, Request: m.source}, true
	}
	return LiveItem{Item: g.items[n], Source: "bundle", Bundle: g.Version()}, true
}

// ItemsOffset is the items-topic offset after the last change the live
// generation holds (-1 before a bundle is loaded).
func (e *Engine) ItemsOffset() int64 {
	g := e.current.Load()
	if g == nil {
		return -1
	}
	return g.live.Load().next
}
