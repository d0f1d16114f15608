package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/internal/realtime"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/rules"
)

// stageInput is what both surfaces hand to the shared second half of the pipeline.
type stageInput struct {
	surface   string
	requestID string
	query     string
	vec       []float32 // nil: cold start, rank popular items
	k         int
	user      User
	filters   Filters
	exclude   map[int32]bool
	explain   bool
	degraded  []string // stages that fell back before ranking
	// Text queries: the retrieval mode, the analysed lexical query (nil
	// when lexical retrieval does not run) and the item whose id the query
	// is (-1 for none).
	mode    string
	lex     *index.LexicalQuery
	exactID int32
	// history is the user's stored actions when Recommend already read
	// them (historyRead), so ranking does not read them again.
	history     []string
	historyRead bool
	// context is the client's request context (rules read it); bound is
	// the filter and business rules the request runs with (the live ones,
	// or a dry run's), and dry says not to emit the impression.
	context map[string]string
	bound   *rules.Bound
	dry     bool
	// v is the live catalog the request reads, loaded once.
	v *view
	// hist and histW are a recommendation's history as item numbers, most
	// recent first, with their weights (a seed is a history of one);
	// sources the recommendation sources it asked for (0: all).
	hist    []int32
	histW   []float32
	sources uint8
	// retrievalOrder skips the ranker: candidates are ordered as retrieval
	// merged them (the rules still apply).
	retrievalOrder bool
}

// Search answers a text query.
func (e *Engine) Search(ctx context.Context, req SearchRequest) (Result, error) {
	g, err := e.acquire()
	if err != nil {
		return Result{}, err
	}
	defer g.release()
	q := strings.TrimSpace(req.Query)
	if q == "" {
		return Result{}, badInput("query", "must not be empty")
	}
	if err := checkK(req.K); err != nil {
		return Result{}, err
	}
	in := stageInput{surface: "search", requestID: req.RequestID, query: q, k: req.K, user: req.User,
		filters: req.Filters, explain: req.Explain, mode: req.Retrieval, exactID: -1, context: req.Context}
	in.v = g.live.Load()
	in.bindRules(g, req.DryRules)
	if in.mode == "" {
		in.mode = e.cfg.Retrieval.Mode
	}
	if err := checkMode(in.mode); err != nil {
		return Result{}, badInput("retrieval", err.Error())
	}
	if id, ok := in.v.lookup(q); ok {
		in.exactID = id
	}
	useLex, useDense := in.mode != ModeDense, in.mode != ModeLexical
	if useLex && g.lexical == nil {
		// A bundle built before the lexical index: serve dense, and say so.
		e.m.degraded.WithLabelValues("lexical").Inc()
		in.degraded = append(in.degraded, "lexical")
		useLex, useDense = false, true
	}
	if useLex {
		lq := g.lexical.Parse(q)
		if lq.Words() == 0 && !useDense && in.exactID < 0 {
			return Result{}, badInput("query", "has no searchable terms")
		}
		in.lex = &lq
	}
	if useDense {
		if ids, _ := g.encoder.Featurizer().Featurize(q); len(ids) == 0 {
			return Result{}, badInput("query", "has no searchable terms")
		}
		start := time.Now()
		if in.vec, err = e.embedQuery(ctx, g, q); err != nil {
			return Result{}, err
		}
		e.m.stage.WithLabelValues("search", "embed").Observe(time.Since(start).Seconds())
	}
	return e.run(ctx, g, in)
}

// Recommend answers for a user (a vector built from recent items, or
// popular items for a user with none) or for items similar to a seed item.
func (e *Engine) Recommend(ctx context.Context, req RecommendRequest) (Result, error) {
	g, err := e.acquire()
	if err != nil {
		return Result{}, err
	}
	defer g.release()
	if err := checkK(req.K); err != nil {
		return Result{}, err
	}
	in := stageInput{surface: "recommend", requestID: req.RequestID, k: req.K, user: req.User,
		filters: req.Filters, explain: req.Explain, exclude: map[int32]bool{}, exactID: -1, context: req.Context}
	in.v = g.live.Load()
	in.bindRules(g, req.DryRules)
	if in.sources, err = sourceBits(req.Sources); err != nil {
		return Result{}, badInput("sources", err.Error())
	}
	switch req.Order {
	case "", OrderRanked:
	case OrderRetrieval:
		in.retrievalOrder = true
	default:
		return Result{}, badInput("order", fmt.Sprintf("want %q or %q, got %q", OrderRanked, OrderRetrieval, req.Order))
	}
	for _, id := range req.ExcludeItems {
		if i, ok := in.v.lookup(id); ok {
			in.exclude[i] = true
		}
	}
	start := time.Now()
	switch {
	case req.SeedItem != "":
		id, ok := in.v.lookup(req.SeedItem)
		if !ok {
			return Result{}, notFound("seed_item", fmt.Sprintf("unknown item id %q", req.SeedItem))
		}
		in.vec = in.v.vector(id)
		in.exclude[id] = true
		in.hist, in.histW = []int32{id}, []float32{1}
	case len(req.RecentItems) > 0 || req.User.ID != "":
		// The history is the client's recent items (this session's) ahead
		// of the user's stored actions as the counter updater keeps them;
		// with neither (a new user, or the store down), popular items.
		hist := req.RecentItems
		if req.User.ID != "" && e.deps.Realtime != nil {
			rt, err := e.deps.Realtime.FetchRealtime(ctx, e.now(), req.User.ID, nil, false)
			if err != nil {
				e.m.degraded.WithLabelValues("history").Inc()
				e.log.Warn("user history fetch failed, recommending from the request's recent items or popular items", "error", err)
				in.degraded = append(in.degraded, "history")
			} else {
				hist = mergeHistory(req.RecentItems, rt.History)
			}
		}
		if len(hist) > 0 {
			in.history, in.historyRead = hist, true
		}
		in.vec = e.userVector(in.v, hist, in.exclude)
		if len(req.RecentItems) > 0 && !e.anyKnown(in.v, req.RecentItems) {
			return Result{}, notFound("recent_items", "none of the item ids is in the catalog")
		}
		in.hist, in.histW = e.historyOf(in.v, hist)
	default:
		return Result{}, badInput("recent_items", "is required unless user.id or seed_item is given")
	}
	e.m.stage.WithLabelValues("recommend", "embed").Observe(time.Since(start).Seconds())
	return e.run(ctx, g, in)
}

// mergeHistory is recent followed by the stored items it does not hold.
func mergeHistory(recent, stored []string) []string {
	if len(recent) == 0 {
		return stored
	}
	out := slices.Clip(slices.Clone(recent))
	for _, id := range stored {
		if !slices.Contains(recent, id) {
			out = append(out, id)
		}
	}
	return out
}

func (e *Engine) anyKnown(v *view, ids []string) bool {
	for _, id := range ids {
		if _, ok := v.lookup(id); ok {
			return true
		}
	}
	return false
}

// MaxK is the most results one request may ask for: the one limit the
// HTTP layer's server.max_k is checked against.
const MaxK = 1000

func checkK(k int) error {
	if k < 1 || k > MaxK {
		return badInput("k", fmt.Sprintf("must be between 1 and %d", MaxK))
	}
	return nil
}

func (e *Engine) embedQuery(ctx context.Context, g *Generation, q string) ([]float32, error) {
	// Texts with one normal form share an embedding; the key carries the
	// version because a new model maps the same text elsewhere.
	key := g.Version() + "\x00" + embed.Normalize(q)
	if e.cache != nil {
		if v, ok := e.cache.Get(key); ok {
			return v, nil
		}
	}
	vecs, err := g.encoder.Encode(ctx, []string{q})
	if err != nil {
		return nil, fmt.Errorf("embed query: %w", err)
	}
	if e.cache != nil {
		e.cache.Put(key, vecs[0])
	}
	return vecs[0], nil
}

// userVector is the decayed, weighted mean of the recent items' embeddings,
// most recent first. Unknown ids are skipped (items leave catalogs), and the
// known ones are excluded from the results.
func (e *Engine) userVector(v *view, recent []string, exclude map[int32]bool) []float32 {
	var vec []float32
	w := 1.0
	used := 0
	for _, id := range recent {
		i, ok := v.lookup(id)
		if !ok {
			continue
		}
		exclude[i] = true
		if used >= e.cfg.MaxRecent {
			continue
		}
		iv := v.vector(i)
		if vec == nil {
			vec = make([]float32, len(iv))
		}
		for j, x := range iv {
			vec[j] += float32(w) * x
		}
		w *= e.cfg.RecentDecay
		used++
	}
	if vec == nil {
		return nil
	}
	var norm float64
	for _, x := range vec {
		norm += float64(x) * float64(x)
	}
	if norm = math.Sqrt(norm); norm > 0 {
		for j := range vec {
			vec[j] = float32(float64(vec[j]) / norm)
		}
	}
	return vec
}

func (e *Engine) run(ctx context.Context, g *Generation, in stageInput) (Result, error) {
	res := Result{RequestID: in.requestID, Bundle: g.Version(), Items: []Hit{}, Degraded: in.degraded}
	if e.deps.Items != nil && e.itemsUnreachable.Load() {
		// The items topic cannot be read: the catalog may lack changes
		// written since (the bundle's as built, at worst).
		e.m.degraded.WithLabelValues("items").Inc()
		res.Degraded = append(res.Degraded, "items")
	}
	now := e.now()
	env := in.rulesEnv(now)
	keep := e.keep(g, in, env)
	sc := getScratch()
	defer putScratch(sc)

	start := time.Now()
	depth := max(e.cfg.Candidates, in.k)
	var hits []candidate
	switch {
	case in.surface == "search":
		hits = e.retrieveText(g, in, keep, sc)
	case in.surface == "recommend":
		// A cold request (no history) gets popular and fresh items; one
		// that names its sources gets those only.
		hits = e.recommendCandidates(g, in, keep, sc, now)
	case in.vec != nil:
		hits = e.hitCandidates(sc, in.v.searchDense(in.vec, depth, keep), true)
	default:
		hits = e.hitCandidates(sc, g.popularHits(depth, keep), false)
	}
	e.m.stage.WithLabelValues(in.surface, "retrieve").Observe(time.Since(start).Seconds())
	if in.surface == "search" {
		res.Retrieval = in.mode
	}
	hits = e.addPinned(g, in, hits, keep, env, sc)
	if len(hits) == 0 {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	start = time.Now()
	n, names := len(hits), g.Manifest.FeatureNames
	x, degraded := e.features(ctx, g, hits, in, now, &in.history, sc)
	if degraded {
		res.Degraded = append(res.Degraded, "features")
	}
	e.m.stage.WithLabelValues(in.surface, "features").Observe(time.Since(start).Seconds())
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	start = time.Now()
	var scores []float32
	var err error
	if in.retrievalOrder {
		scores = make([]float32, n)
		for i := range hits {
			scores[i] = float32(n - i) // the merged order, whatever the sources' scales
		}
	} else {
		scores, err = e.score(ctx, g, x, n)
	}
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		// Serve retrieval order with rules applied rather than fail the request.
		e.m.degraded.WithLabelValues("ranking").Inc()
		e.log.Warn("ranking failed, serving retrieval order", "bundle", g.Version(), "error", err)
		res.Degraded = append(res.Degraded, "ranking")
		scores = make([]float32, n)
		for i, h := range hits {
			scores[i] = h.ret.Score
		}
	}
	e.m.stage.WithLabelValues(in.surface, "score").Observe(time.Since(start).Seconds())

	start = time.Now()
	// The business rules see the history the features stage read.
	env.User.Recent = in.history
	out := e.applyRules(g, hits, scores, in, env, sc)
	ranked := out.Ranked
	e.m.stage.WithLabelValues(in.surface, "rules").Observe(time.Since(start).Seconds())

	f := len(names)
	explore := len(ranked) > 1 && e.cfg.ExploreRate > 0 && rand.Float64() < e.cfg.ExploreRate
	if explore {
		e.m.explored.WithLabelValues(in.surface).Inc()
		rand.Shuffle(len(ranked), func(i, j int) { ranked[i], ranked[j] = ranked[j], ranked[i] })
	}
	for _, c := range ranked {
		i := c.Ref
		h := Hit{ID: c.Item.ID, Title: c.Item.Title, Brand: c.Item.Brand, Category: c.Item.Category, Price: c.Item.Price,
			Score: c.Score, RetrievalScore: hits[i].ret.Score, RetrievalRank: i + 1, Explore: c.Explore, Pinned: c.Pinned}
		if len(c.Effects) > 0 {
			e.m.ruleEffects.WithLabelValues(in.surface).Add(float64(len(c.Effects)))
		}
		if in.explain {
			h.Features = x[i*f : (i+1)*f : (i+1)*f]
			h.Rules = c.Fired()
			h.Effects = c.Effects
			h.RankerScore = &c.Base
			h.RankerRank = c.BasePos + 1
			h.Sources = sourcesOf(hits[i], in.surface == "search")
			h.Contributions = e.contributions(g, h.Features, !slices.Contains(res.Degraded, "ranking"))
		}
		res.Items = append(res.Items, h)
	}
	if in.explain {
		res.FeatureNames = names
		for _, d := range out.Dropped {
			res.Dropped = append(res.Dropped, Dropped{ID: d.Item.ID, Rule: d.Rule, Action: d.Action, Reason: d.Reason, Position: d.Position + 1})
		}
	}
	if !in.dry {
		e.emitImpression(g, in, res, ranked, x, now, explore)
	}
	if !in.explain { // an explained response's hits hold rows of x
		putFloats(&x)
	}
	return res, nil
}

// features assembles the n x F ranker matrix: item features from the store
// (defaults when it is slow, down or lacks an item), real-time counter and
// user features from the counter updater's keys (fetched at the same time)
// and request features.
//
// history receives the user's stored actions when they were read.
func (e *Engine) features(ctx context.Context, g *Generation, hits []candidate, in stageInput, now time.Time, history *[]string, sc *scratch) ([]float32, bool) {
	n, fi, f := len(hits), g.layout.ItemLen(), g.layout.Len()
	sc.ids = grow(sc.ids, n)[:n]
	ids := sc.ids
	for i, h := range hits {
		ids[i] = in.v.item(h.id).ID
	}
	counters, users := g.layout.NeedsCounters(), g.layout.NeedsUser()
	var (
		rt    rank.Realtime
		rtErr error
		done  chan struct{}
		// counts[i] are hits[i]'s counters; miss indexes those the
		// counter cache did not hold, which Redis is asked for.
		counts []realtime.Stats
		miss   []int
		read   = time.Now()
	)
	user := in.user.ID
	if !users || in.historyRead {
		user = ""
	}
	fetchIDs := ids
	if counters && e.deps.Realtime != nil {
		sc.counts = grow(sc.counts, n)[:n]
		counts = sc.counts
		clear(counts)
		if g.counters != nil {
			miss = g.counters.lookup(hits, now, read, counts, sc.miss[:0])
			e.m.counterCache.WithLabelValues("hit").Add(float64(n - len(miss)))
			e.m.counterCache.WithLabelValues("miss").Add(float64(len(miss)))
			fetchIDs = grow(sc.fetchIDs, len(miss))
			for _, i := range miss {
				fetchIDs = append(fetchIDs, ids[i])
			}
			sc.fetchIDs = fetchIDs
		} else {
			miss = grow(sc.miss, n)
			for i := range n {
				miss = append(miss, i)
			}
		}
		sc.miss = miss
	}
	fetchCounters := counters && len(fetchIDs) > 0
	if (fetchCounters || user != "") && e.deps.Realtime != nil {
		fetch := func() { rt, rtErr = e.deps.Realtime.FetchRealtime(ctx, now, user, fetchIDs, fetchCounters) }
		if e.deps.Features == nil {
			// Item rows come from the bundle in memory: nothing to overlap
			// the round trip with but a fill of microseconds, and a
			// goroutine costs a thread's wake-up and sleep each request.
			fetch()
		} else {
			done = make(chan struct{})
			go func() {
				defer close(done)
				fetch()
			}()
		}
	}
	// Item rows: from the store into a pooled buffer, or read in place from
	// the bundle's rows.
	row := func(i int) []float32 { return in.v.itemRow(hits[i].id) }
	var err error
	if e.deps.Features != nil {
		rows := getFloats(n * fi)
		defer putFloats(rows)
		var missing int
		missing, err = e.deps.Features.Fetch(ctx, g.Version(), ids, *rows, g.itemDefaults)
		if err == nil && missing > 0 {
			// Every item of the bundle has a row once it is seeded: a gap
			// means the store lost them. Say so, and have Run re-seed.
			err = fmt.Errorf("%d of %d item feature rows missing from the store", missing, len(ids))
			e.kickSeed()
		}
		row = func(i int) []float32 { return (*rows)[i*fi : (i+1)*fi] }
	}
	degraded := err != nil
	if degraded {
		e.m.degraded.WithLabelValues("features").Inc()
		e.log.Warn("feature fetch failed, using defaults", "bundle", g.Version(), "error", err)
	}
	xp := getFloats(n * f)
	x := *xp
	for i, h := range hits {
		g.layout.Fill(x[i*f:(i+1)*f], row(i), h.ret)
	}
	if e.deps.Realtime == nil || !(counters || users) {
		if users && in.historyRead {
			fillUser(g, in, hits, x, in.history)
		}
		return x, degraded
	}
	if done != nil {
		<-done
	}
	if in.historyRead {
		rt.History = in.history
	} else if rtErr == nil && rt.History != nil {
		*history = rt.History
	}
	if rtErr != nil {
		if !degraded {
			e.m.degraded.WithLabelValues("features").Inc()
		}
		e.log.Warn("real-time feature fetch failed, using defaults", "bundle", g.Version(), "error", rtErr)
		return x, true
	}
	if counters && fetchCounters && len(rt.Items) != len(miss) {
		e.m.degraded.WithLabelValues("features").Inc()
		e.log.Warn("real-time feature fetch returned the wrong number of items, using defaults", "bundle", g.Version(),
			"want", len(miss), "got", len(rt.Items))
		return x, true
	}
	if counters {
		for j, i := range miss {
			counts[i] = rt.Items[j]
			if g.counters != nil {
				g.counters.store(hits[i].id, rt.Items[j], read)
			}
		}
		for i := range hits {
			g.layout.FillCounters(x[i*f:(i+1)*f], counts[i].Impressions, counts[i].Clicks)
		}
	}
	if users {
		fillUser(g, in, hits, x, rt.History)
	}
	return x, degraded
}

func (e *Engine) score(ctx context.Context, g *Generation, x []float32, n int) ([]float32, error) {
	rctx, cancel := context.WithTimeout(ctx, e.cfg.RankTimeout)
	defer cancel()
	s, err := g.scorer.Score(rctx, x, n)
	if err == nil && len(s) != n {
		err = fmt.Errorf("ranker returned %d scores for %d rows", len(s), n)
	}
	if err == nil {
		for _, v := range s {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, errors.New("ranker returned a non-finite score")
			}
		}
	}
	return s, err
}

// popularHits is retrieval for users without history: the most popular
// items that pass the filter, scored by their rank.
func (g *Generation) popularHits(k int, keep index.Filter) []index.Hit {
	out := make([]index.Hit, 0, k)
	for _, id := range g.popular {
		if keep != nil && !keep(id) {
			continue
		}
		out = append(out, index.Hit{ID: id, Score: 0})
		if len(out) == k {
			break
		}
	}
	return out
}

func (e *Engine) emitImpression(g *Generation, in stageInput, res Result, ranked []rules.Candidate, x []float32, now time.Time, explore bool) {
	if e.deps.Impressions == nil || len(res.Items) == 0 {
		return
	}
	f := len(g.Manifest.FeatureNames)
	user := in.user.ID
	if user == "" {
		user = "anonymous:" + in.requestID
	}
	ev := feedback.Event{
		EventID: uuid.NewString(), Type: feedback.TypeImpression, SchemaVersion: feedback.SchemaVersion,
		Timestamp: now.UTC(), UserID: user, RequestID: in.requestID, Surface: in.surface,
		Query: in.query, Bundle: g.Version(), FeatureNames: g.Manifest.FeatureNames,
		Items: make([]feedback.ImpressionItem, len(res.Items)), Explore: explore,
	}
	// The shown items' rows are copied out of x, which the engine reuses
	// for the next request once this one is answered.
	shown := make([]float32, len(ranked)*f)
	for pos, c := range ranked {
		i := c.Ref
		row := shown[pos*f : (pos+1)*f : (pos+1)*f]
		copy(row, x[i*f:(i+1)*f])
		ev.Items[pos] = feedback.ImpressionItem{ItemID: c.Item.ID, Position: pos, Score: c.Score, Features: row, Explore: c.Explore}
	}
	e.deps.Impressions.PublishAsync(ev)
}
