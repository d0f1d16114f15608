package movielens

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/offline/ranktrain"
)

// Protocols of the product evaluation.
const (
	// PerUser holds out each user's newest fraction of ratings; the other
	// users' ratings of the same period stay in training (the published
	// protocol, which leaks time across users).
	PerUser = "per-user"
	// Global cuts all ratings at one date: nothing after it is in any
	// statistic, and the users active after it are the test users.
	Global = "global"
)

// Split is one protocol's division of the ratings.
type Split struct {
	Protocol string
	Train    []Rating
	Test     map[int][]Rating // user -> held-out ratings
	Cutoff   time.Time        // Global only
}

// SplitRatings divides rs by protocol, holding out frac.
func SplitRatings(rs []Rating, protocol string, frac float64) (Split, error) {
	switch protocol {
	case PerUser:
		past, future := splitByTime(byUser(rs), frac)
		s := Split{Protocol: protocol, Test: future}
		for _, u := range sortedKeys(past) {
			s.Train = append(s.Train, past[u]...)
		}
		return s, nil
	case Global:
		if len(rs) == 0 {
			return Split{}, errors.New("movielens: no ratings to split")
		}
		ts := make([]int64, len(rs))
		for i, r := range rs {
			ts[i] = r.Time
		}
		slices.Sort(ts)
		cut := ts[min(len(ts)-1, int(float64(len(ts))*(1-frac)))]
		s := Split{Protocol: protocol, Test: map[int][]Rating{}, Cutoff: time.Unix(cut, 0).UTC()}
		for _, r := range rs {
			if r.Time < cut {
				s.Train = append(s.Train, r)
			} else {
				s.Test[r.User] = append(s.Test[r.User], r)
			}
		}
		return s, nil
	}
	return Split{}, fmt.Errorf("movielens: unknown protocol %q (want %s or %s)", protocol, PerUser, Global)
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// ItemID is the catalog id of a movie.
func ItemID(movie int) string { return "m" + strconv.Itoa(movie) }

// Items is the catalog of the movies: the title, the first genre as the
// category and all genres as tags, created on the first of January of the
// release year (1900 when the title has none).
func Items(d *Data) []catalog.Item {
	ids := sortedKeys(d.Movies)
	out := make([]catalog.Item, 0, len(ids))
	for _, id := range ids {
		m := d.Movies[id]
		year := m.Year
		if year < 1800 {
			year = 1900
		}
		it := catalog.Item{ID: ItemID(id), Title: m.Title, Tags: m.Genres, Available: true,
			CreatedAt: time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)}
		if len(m.Genres) > 0 {
			it.Category = m.Genres[0]
		}
		out = append(out, it)
	}
	return out
}

// Events are the ratings as the service's feedback events: a rating at or
// above positive is a click on the movie at the rating's time; lower ones
// are not interactions (they still count as seen).
func Events(rs []Rating, positive float32) []feedback.Event {
	out := make([]feedback.Event, 0, len(rs))
	for _, r := range rs {
		if r.Stars < positive {
			continue
		}
		out = append(out, feedback.Event{
			EventID: fmt.Sprintf("ml-%d-%d-%d", r.User, r.Movie, r.Time), Type: feedback.TypeClick, SchemaVersion: feedback.SchemaVersion,
			Timestamp: time.Unix(r.Time, 0).UTC(), UserID: "u" + strconv.Itoa(r.User), ItemID: ItemID(r.Movie), Surface: "recommend",
		})
	}
	return out
}

// EventLog writes events where a build replays them from: the service's
// event topic in the command, a memory log in tests.
type EventLog interface {
	Write(ctx context.Context, name string, evs []feedback.Event) (offline.Events, error)
}

// ProductOptions run the evaluation through the product: the build, the
// ranker training and the engine serve uses.
type ProductOptions struct {
	Build   offline.BuildOptions // the configuration's; catalog, bundles and events are set per stage
	Engine  engine.Config
	Load    engine.LoadOptions
	Log     EventLog
	Rank    ranktrain.Config
	Current []byte // the linear ranker the trained one must beat at the gate
	Dir     string // where catalogs, bundles and models go
	// HoldOut is the held-out fraction (0.2), Positive the rating that
	// counts as liked (4), K the NDCG cut-off (10), RecallAt (50).
	HoldOut  float64
	Positive float32
	// TrainSplits is how many shifted cut-offs give the ranker's training
	// queries (2).
	TrainSplits int
	K           int
	RecallAt    int
	Progress    io.Writer
}

// Row is one line of the report: an order's NDCG@K and Recall@RecallAt
// averaged over the test users.
type Row struct {
	Name   string
	NDCG   float64
	Recall float64
}

// ProductReport is one protocol's table.
type ProductReport struct {
	Protocol string
	Users    int // test users with a held-out positive
	Cold     int // of them, users without a training positive (popular items)
	Rows     []Row
	// CandidateRecall is the share of held-out positives among the merged
	// candidates (the ranker's ceiling).
	CandidateRecall float64
	Ranker          *ranktrain.Record
	Bundle          string
	Seconds         float64
}

// user is one test or training user's request and labels.
type user struct {
	id      int
	recent  []string // liked training items, newest first
	seen    []string // every training rating
	liked   map[string]bool
	at      time.Time
	history int
}

func users(train []Rating, test map[int][]Rating, positive float32) []user {
	byU := byUser(train)
	var out []user
	for _, u := range sortedKeys(test) {
		liked := map[string]bool{}
		for _, r := range test[u] {
			if r.Stars >= positive {
				liked[ItemID(r.Movie)] = true
			}
		}
		if len(liked) == 0 {
			continue
		}
		rs := slices.Clone(byU[u])
		slices.SortFunc(rs, func(a, b Rating) int {
			if c := cmp.Compare(b.Time, a.Time); c != 0 {
				return c
			}
			return b.Movie - a.Movie
		})
		us := user{id: u, liked: liked, history: len(rs)}
		for _, r := range rs {
			us.seen = append(us.seen, ItemID(r.Movie))
			if r.Stars >= positive {
				us.recent = append(us.recent, ItemID(r.Movie))
			}
		}
		if len(rs) > 0 {
			us.at = time.Unix(rs[0].Time, 0).UTC()
		}
		out = append(out, us)
	}
	return out
}

func (u user) request(k int, sources []string, order string, explain bool) engine.RecommendRequest {
	return engine.RecommendRequest{RequestID: "ml-" + strconv.Itoa(u.id), User: engine.User{ID: "u" + strconv.Itoa(u.id)},
		RecentItems: u.recent, ExcludeItems: u.seen, K: k, Sources: sources, Order: order, Explain: explain}
}

// EvaluateProduct answers one protocol through the product. The ranker
// learns from the same protocol shifted back once inside the training
// ratings (a bundle built from the older part answers its users, the
// newer part labels the served candidates, and ranktrain's gate decides);
// then a bundle of all training ratings, carrying that ranker, answers
// the test users: each source alone and the merged list in retrieval
// order, then merged and ranked.
func EvaluateProduct(ctx context.Context, d *Data, protocol string, o ProductOptions) (*ProductReport, error) {
	start := time.Now()
	outer, err := SplitRatings(d.Ratings, protocol, o.HoldOut)
	if err != nil {
		return nil, err
	}
	items := Items(d)
	catalogPath := filepath.Join(o.Dir, "catalog.jsonl")
	if err := atomicfile.Write(catalogPath, func(w io.Writer) error { return catalog.WriteJSONL(w, items) }); err != nil {
		return nil, err
	}
	depth := o.Engine.Recommend.Quotas.Content + o.Engine.Recommend.Quotas.Cooc + o.Engine.Recommend.Quotas.ALS +
		o.Engine.Recommend.Quotas.Popular + o.Engine.Recommend.Quotas.Fresh
	rep := &ProductReport{Protocol: protocol}

	// The ranker's training queries: the protocol shifted back once, and
	// again, inside the training ratings (about 600 users give too few
	// queries for one shift to train and early-stop on).
	var qs []*ranktrain.Query
	var features []string
	past := outer.Train
	for shift := 1; shift <= max(o.TrainSplits, 1); shift++ {
		inner, err := SplitRatings(past, protocol, o.HoldOut)
		if err != nil {
			return nil, err
		}
		o.progress("%s: ranker training split %d: %d ratings before, %d users after", protocol, shift, len(inner.Train), len(inner.Test))
		e, _, err := o.stage(ctx, fmt.Sprintf("%s-inner%d", protocol, shift), inner.Train, catalogPath, "")
		if err != nil {
			return nil, err
		}
		for _, u := range users(inner.Train, inner.Test, o.Positive) {
			res, err := e.Recommend(ctx, u.request(depth, nil, "", true))
			if err != nil {
				e.Close()
				return nil, fmt.Errorf("movielens: training user %d: %w", u.id, err)
			}
			features = res.FeatureNames
			q := &ranktrain.Query{RequestID: fmt.Sprintf("ml-%d-%d", shift, u.id), UserID: strconv.Itoa(u.id), Time: u.at, Bundle: res.Bundle}
			for pos, h := range res.Items {
				l := float32(0)
				if u.liked[h.ID] {
					l = 1
				}
				q.Items, q.Positions, q.Labels = append(q.Items, h.ID), append(q.Positions, pos), append(q.Labels, l)
				q.Features = append(q.Features, slices.Clone(h.Features))
			}
			qs = append(qs, q)
		}
		e.Close()
		past = inner.Train
	}
	slices.SortStableFunc(qs, func(a, b *ranktrain.Query) int { return a.Time.Compare(b.Time) })
	rc := o.Rank
	rc.PropensityPower, rc.PropensityEstimate = 0, false // labels are ratings, not clicks at a position
	modelPath, promoted := filepath.Join(o.Dir, protocol+"-candidate.onnx"), filepath.Join(o.Dir, protocol+"-ranker.onnx")
	rec, err := ranktrain.Train(ctx, ranktrain.Options{Config: rc, Features: features, Current: o.Current, CurrentName: "linear",
		ModelPath: modelPath, PromotePath: promoted, RunsDir: filepath.Join(o.Dir, "runs"), Progress: o.Progress}, nil, qs, ranktrain.JoinStats{})
	if err != nil {
		return nil, fmt.Errorf("movielens: train the ranker: %w", err)
	}
	rep.Ranker = rec
	ranker := ""
	if rec.PromotedTo != "" {
		ranker = promoted
	}

	// The test.
	eB, m, err := o.stage(ctx, protocol, outer.Train, catalogPath, ranker)
	if err != nil {
		return nil, err
	}
	defer eB.Close()
	rep.Bundle = m.Version
	type variant struct {
		name    string
		sources []string
		order   string
	}
	var vs []variant
	for _, s := range engine.RecommendSources {
		vs = append(vs, variant{s, []string{s}, engine.OrderRetrieval})
	}
	vs = append(vs, variant{"merged", nil, engine.OrderRetrieval}, variant{"merged + ranker", nil, engine.OrderRanked})
	rows := make([]Row, len(vs))
	inCands, positives := 0, 0
	for _, u := range users(outer.Train, outer.Test, o.Positive) {
		rep.Users++
		if len(u.recent) == 0 {
			rep.Cold++
		}
		positives += len(u.liked)
		for i, v := range vs {
			k := max(o.K, o.RecallAt)
			if i == len(vs)-1 {
				k = depth // all candidates: the ranker's ceiling too
			}
			res, err := eB.Recommend(ctx, u.request(k, v.sources, v.order, false))
			if err != nil {
				return nil, fmt.Errorf("movielens: user %d, %s: %w", u.id, v.name, err)
			}
			ids := make([]string, len(res.Items))
			for j, h := range res.Items {
				ids[j] = h.ID
			}
			if i == len(vs)-1 {
				for _, id := range ids {
					if u.liked[id] {
						inCands++
					}
				}
			}
			rows[i].NDCG += NDCG(ids, u.liked, o.K)
			rows[i].Recall += recall(ids, u.liked, o.RecallAt)
		}
	}
	if rep.Users == 0 {
		return nil, errors.New("movielens: no test user has a held-out positive")
	}
	for i, v := range vs {
		rows[i].Name = v.name
		rows[i].NDCG /= float64(rep.Users)
		rows[i].Recall /= float64(rep.Users)
	}
	rep.Rows = rows
	rep.CandidateRecall = float64(inCands) / float64(positives)
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// stage builds a bundle of the catalog with the ratings as its event log
// and the ranker at rankerPath ("" for the linear one), and opens it.
func (o ProductOptions) stage(ctx context.Context, name string, rs []Rating, catalogPath, rankerPath string) (*engine.Engine, *bundle.Manifest, error) {
	evs, err := o.Log.Write(ctx, name, Events(rs, o.Positive))
	if err != nil {
		return nil, nil, fmt.Errorf("movielens: write the events: %w", err)
	}
	b := o.Build
	b.Catalog, b.BundlesDir, b.Events, b.Ranker, b.Items = catalogPath, filepath.Join(o.Dir, name, "bundles"), evs, rankerPath, nil
	b.Progress, b.Features, b.Keep = o.Progress, nil, 1
	// The build runs when the nightly job would have: just after the
	// newest rating it holds, so item ages are as of then.
	var newest int64
	for _, r := range rs {
		newest = max(newest, r.Time)
	}
	at := time.Unix(newest+1, 0).UTC()
	b.Now = func() time.Time { return at }
	if err := os.MkdirAll(b.BundlesDir, 0o755); err != nil {
		return nil, nil, err
	}
	m, err := offline.Build(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	if want := len(Events(rs, o.Positive)); m.Sources == nil || m.Sources.Interactions != want {
		return nil, nil, fmt.Errorf("movielens: the build replayed %v interactions, %d were written", m.Sources, want)
	}
	e, err := engine.New(o.Engine, engine.Deps{Load: o.Load})
	if err != nil {
		return nil, nil, err
	}
	if err := e.Load(ctx, filepath.Join(b.BundlesDir, m.Version)); err != nil {
		e.Close()
		return nil, nil, err
	}
	return e, m, nil
}

func (o ProductOptions) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// NDCG is binary NDCG@k of ids against liked, the ideal placing every
// liked item first (those retrieval missed included).
func NDCG(ids []string, liked map[string]bool, k int) float64 {
	dcg, ideal := 0.0, 0.0
	for p := 0; p < k; p++ {
		disc := 1 / math.Log2(float64(p)+2)
		if p < len(ids) && liked[ids[p]] {
			dcg += disc
		}
		if p < len(liked) {
			ideal += disc
		}
	}
	if ideal == 0 {
		return 0
	}
	return dcg / ideal
}

func recall(ids []string, liked map[string]bool, k int) float64 {
	n := 0
	for _, id := range ids[:min(k, len(ids))] {
		if liked[id] {
			n++
		}
	}
	return float64(n) / float64(len(liked))
}
