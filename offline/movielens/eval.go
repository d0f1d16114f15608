package movielens

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/recsys-dev/recsys/rank"
)

// Features are the ranker's inputs, in order.
var Features = []string{
	"retrieval_score", "retrieval_score_rel", "retrieval_rank", "neighbour_votes", "log_popularity",
	"mean_rating", "genre_affinity", "year", "log_user_history",
	"log_trend", "recent_genre_affinity", "age_at_user_time",
}

// Config sets one evaluation.
type Config struct {
	HoldOut    float64 // each user's newest fraction of ratings held out (0.2)
	Positive   float32 // ratings at or above are positives (4)
	Candidates int     // retrieval candidates per user (200)
	Popular    int     // most popular unseen movies added to the candidates (50)
	Neighbours int     // users in the collaborative-filtering neighbourhood (50)
	K          int     // NDCG cut-off (10)
	// TrainSplits is how many shifted cut-offs give training queries (1 or 2).
	TrainSplits int
	Model       rank.LambdaMARTConfig
}

// DefaultConfig is the protocol of must-show 2.
func DefaultConfig() Config {
	m := rank.DefaultLambdaMARTConfig()
	// Few queries (about 500 users) and sparse positives: small steps,
	// big leaves and a patient, larger validation split keep early
	// stopping from reacting to noise.
	m.LearningRate, m.MinLeafRows, m.MaxLeaves, m.EarlyStopping, m.ValidFraction = 0.05, 100, 15, 100, 0.25
	return Config{HoldOut: 0.2, Positive: 4, Candidates: 200, Popular: 50, Neighbours: 50, K: 10, TrainSplits: 2, Model: m}
}

// Report compares the three orders on the held-out ratings.
type Report struct {
	Users        int     // users with at least one held-out positive
	Popularity   float64 // NDCG@K of the most popular unseen movies
	Retrieval    float64 // NDCG@K of the collaborative-filtering order
	Ranker       float64 // NDCG@K of the trained ranker over the same candidates
	CandRecall   float64 // share of held-out positives among the candidates
	TrainQueries int
	TrainRows    int
	Trees        int
	ValidNDCG    float64 // the ranker's early-stopping metric (within candidates)
}

// query is one user's candidates with features and labels.
type query struct {
	movies    []int
	x         []float32 // len(movies) x len(Features)
	labels    []float32
	retrieval []float32
	pop       []float32
	positives int // held-out positives, in the candidates or not
}

// Evaluate runs the protocol: train on the inner split, test on the outer.
func Evaluate(ctx context.Context, d *Data, cfg Config) (Report, error) {
	var rep Report
	all := byUser(d.Ratings)
	hist, test := splitByTime(all, cfg.HoldOut)
	// Training queries come from two earlier cut-offs inside the history
	// (the same protocol shifted back in time once and twice): about 600
	// users give too few queries for one split to train and early-stop on.
	innerHist, innerLabels := splitByTime(hist, cfg.HoldOut)
	trainQs := buildQueries(d, innerHist, innerLabels, cfg)
	if cfg.TrainSplits > 1 {
		olderHist, olderLabels := splitByTime(innerHist, cfg.HoldOut)
		trainQs = append(trainQs, buildQueries(d, olderHist, olderLabels, cfg)...)
	}
	train := &rank.Dataset{Features: Features}
	for _, q := range trainQs {
		if !slices.Contains(q.labels, 1) {
			continue // no positive among the candidates: nothing to learn
		}
		train.X = append(train.X, q.x...)
		train.Labels = append(train.Labels, q.labels...)
		train.Groups = append(train.Groups, len(q.movies))
	}
	if len(train.Groups) == 0 {
		return rep, errors.New("movielens: no training query has a positive candidate")
	}
	rep.TrainQueries, rep.TrainRows = len(train.Groups), train.Rows()
	ens, tr, err := rank.TrainLambdaMART(ctx, cfg.Model, train)
	if err != nil {
		return rep, fmt.Errorf("movielens: %w", err)
	}
	rep.Trees, rep.ValidNDCG = tr.Trees, tr.ValidNDCG

	inCands, positives := 0, 0
	for _, q := range buildQueries(d, hist, test, cfg) {
		if q.positives == 0 {
			continue
		}
		rep.Users++
		positives += q.positives
		for _, l := range q.labels {
			inCands += int(l)
		}
		rep.Popularity += ndcg(q.labels, q.pop, q.positives, cfg.K)
		rep.Retrieval += ndcg(q.labels, q.retrieval, q.positives, cfg.K)
		rep.Ranker += ndcg(q.labels, ens.ScoreRows(q.x, len(q.movies)), q.positives, cfg.K)
	}
	if rep.Users == 0 {
		return rep, errors.New("movielens: no user has a held-out positive")
	}
	n := float64(rep.Users)
	rep.Popularity, rep.Retrieval, rep.Ranker = rep.Popularity/n, rep.Retrieval/n, rep.Ranker/n
	rep.CandRecall = float64(inCands) / float64(positives)
	return rep, nil
}

// ndcg is NDCG@k of the candidates ordered by score (ties by candidate
// order), against an ideal that places all the user's held-out positives
// first, including those retrieval missed.
func ndcg(labels, scores []float32, positives, k int) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	dcg, ideal := 0.0, 0.0
	for p := 0; p < k; p++ {
		disc := 1 / math.Log2(float64(p)+2)
		if p < len(idx) {
			dcg += float64(labels[idx[p]]) * disc
		}
		if p < positives {
			ideal += disc
		}
	}
	return dcg / ideal
}

// buildQueries retrieves candidates for every user from hist alone and
// labels them with future.
func buildQueries(d *Data, hist, future map[int][]Rating, cfg Config) []query {
	// Item statistics from the history pool only.
	count := map[int]int{}
	sum := map[int]float64{}
	pos := map[int][]int{} // user -> sorted positive movies
	seen := map[int]map[int]bool{}
	genres := map[int]map[string]float64{}
	var users []int
	for u, rs := range hist {
		users = append(users, u)
		seen[u] = map[int]bool{}
		g := map[string]float64{}
		for _, r := range rs {
			count[r.Movie]++
			sum[r.Movie] += float64(r.Stars)
			seen[u][r.Movie] = true
			if r.Stars >= cfg.Positive {
				pos[u] = append(pos[u], r.Movie)
				for _, name := range d.Movies[r.Movie].Genres {
					g[name]++
				}
			}
		}
		slices.Sort(pos[u])
		genres[u] = g
	}
	slices.Sort(users)
	// Trend, as of each user's own last rating (nothing after it, so the
	// feature cannot see the held-out period): the movie's ratings in the
	// pool during the year before. Plus the user's recent taste (genres of
	// the last 10 positives) and how old a movie was at that time.
	times := map[int][]int64{} // movie -> sorted rating times in the pool
	recentGenres := map[int]map[string]float64{}
	lastTime := map[int]int64{}
	for u, rs := range hist {
		byTime := slices.Clone(rs)
		slices.SortFunc(byTime, func(a, b Rating) int { return cmp.Compare(b.Time, a.Time) })
		g := map[string]float64{}
		n := 0
		for _, r := range byTime {
			times[r.Movie] = append(times[r.Movie], r.Time)
			if r.Stars >= cfg.Positive && n < 10 {
				n++
				for _, name := range d.Movies[r.Movie].Genres {
					g[name]++
				}
			}
		}
		recentGenres[u] = g
		if len(byTime) > 0 {
			lastTime[u] = byTime[0].Time
		}
	}
	for _, ts := range times {
		slices.Sort(ts)
	}
	const trendWindow = 365 * 24 * 3600
	trend := func(m int, at int64) int {
		ts := times[m]
		lo, _ := slices.BinarySearch(ts, at-trendWindow)
		hi, _ := slices.BinarySearch(ts, at+1)
		return hi - lo
	}
	popular := make([]int, 0, len(count))
	for m := range count {
		popular = append(popular, m)
	}
	slices.SortFunc(popular, func(a, b int) int {
		if count[a] != count[b] {
			return count[b] - count[a]
		}
		return a - b
	})

	out := make([]query, 0, len(users))
	for _, u := range users {
		// User-based collaborative filtering: neighbours by cosine overlap
		// of liked movies, candidates by their similarity-weighted votes.
		type nb struct {
			v   int
			sim float64
		}
		var nbs []nb
		for _, v := range users {
			if v == u || len(pos[u]) == 0 || len(pos[v]) == 0 {
				continue
			}
			if s := overlap(pos[u], pos[v]); s > 0 {
				nbs = append(nbs, nb{v, float64(s) / math.Sqrt(float64(len(pos[u])*len(pos[v])))})
			}
		}
		slices.SortFunc(nbs, func(a, b nb) int {
			if a.sim != b.sim {
				if a.sim > b.sim {
					return -1
				}
				return 1
			}
			return a.v - b.v
		})
		nbs = nbs[:min(len(nbs), cfg.Neighbours)]
		score, votes := map[int]float64{}, map[int]int{}
		for _, n := range nbs {
			for _, m := range pos[n.v] {
				if !seen[u][m] {
					score[m] += n.sim
					votes[m]++
				}
			}
		}
		cands := make([]int, 0, len(score))
		for m := range score {
			cands = append(cands, m)
		}
		byScore := func(a, b int) int {
			if score[a] != score[b] {
				if score[a] > score[b] {
					return -1
				}
				return 1
			}
			return a - b
		}
		slices.SortFunc(cands, byScore)
		cands = cands[:min(len(cands), cfg.Candidates)]
		added := 0
		for _, m := range popular {
			if added == cfg.Popular {
				break
			}
			if !seen[u][m] && !slices.Contains(cands, m) {
				cands = append(cands, m)
				added++
			}
		}
		slices.SortStableFunc(cands, byScore)

		liked := map[int]bool{}
		for _, r := range future[u] {
			if r.Stars >= cfg.Positive {
				liked[r.Movie] = true
			}
		}
		q := query{movies: cands, positives: len(liked)}
		gsum := 0.0
		for _, v := range genres[u] {
			gsum += v
		}
		for rank, m := range cands {
			mv := d.Movies[m]
			aff := 0.0
			for _, name := range mv.Genres {
				aff += genres[u][name]
			}
			if gsum > 0 && len(mv.Genres) > 0 {
				aff /= gsum * math.Sqrt(float64(len(mv.Genres)))
			}
			mean := (sum[m] + 3.5*5) / float64(count[m]+5) // shrunk towards a typical rating
			rel := 0.0
			if top := score[cands[0]]; top > 0 {
				rel = score[m] / top
			}
			raff, rsum := 0.0, 0.0
			for _, v := range recentGenres[u] {
				rsum += v
			}
			for _, name := range mv.Genres {
				raff += recentGenres[u][name]
			}
			if rsum > 0 && len(mv.Genres) > 0 {
				raff /= rsum * math.Sqrt(float64(len(mv.Genres)))
			}
			q.x = append(q.x, float32(score[m]), float32(rel), float32(rank), float32(votes[m]), float32(math.Log1p(float64(count[m]))),
				float32(mean), float32(aff), float32(mv.Year), float32(math.Log1p(float64(len(hist[u])))),
				float32(math.Log1p(float64(trend(m, lastTime[u])))), float32(raff),
				float32(1970+float64(lastTime[u])/(365.25*24*3600)-float64(mv.Year)))
			l := float32(0)
			if liked[m] {
				l = 1
			}
			q.labels = append(q.labels, l)
			q.retrieval = append(q.retrieval, float32(score[m]))
			q.pop = append(q.pop, float32(count[m]))
		}
		out = append(out, q)
	}
	return out
}

// overlap counts the common elements of two sorted lists.
func overlap(a, b []int) int {
	n, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			n++
			i++
			j++
		}
	}
	return n
}
