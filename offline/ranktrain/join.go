package ranktrain

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/rank"
)

// Labels of the graded relevance an impression's item earns.
const (
	LabelSkip     = 0
	LabelClick    = 1
	LabelPurchase = 2
)

// actionLabel is the label an action type earns; types not listed (dwell)
// add nothing.
func actionLabel(typ string) (float32, bool) {
	switch typ {
	case feedback.TypeClick, feedback.TypeAddToCart:
		return LabelClick, true
	case feedback.TypePurchase:
		return LabelPurchase, true
	}
	return 0, false
}

// Query is one served impression turned into training rows: the items in
// the order they were shown, with the feature vectors the ranker saw.
type Query struct {
	RequestID string
	UserID    string
	Time      time.Time
	Bundle    string
	// Explore marks an impression shown in a random permutation of the
	// ranked order; EstimatePropensity learns position bias from these.
	Explore   bool
	Items     []string
	Positions []int
	Labels    []float32
	Features  [][]float32
}

// JoinStats counts what the join saw and dropped, for the run record.
type JoinStats struct {
	Impressions int `json:"impressions"`
	Actions     int `json:"actions"`
	// Attributed actions matched a shown item within the window.
	Attributed int `json:"attributed"`
	// Unattributed actions had no impression of their item in the window.
	Unattributed int `json:"unattributed"`
	// FeatureMismatch impressions were served with another feature list
	// (an older bundle); their vectors cannot train this model.
	FeatureMismatch int `json:"feature_mismatch"`
	// NoFeatures impressions carried no vectors (ranking was degraded).
	NoFeatures int `json:"no_features"`
	// Duplicates are impressions seen twice (a replayed delivery).
	Duplicates int `json:"duplicates"`
}

// Joiner collects impressions and actions, in any order, and joins them
// into labelled queries. It is not safe for concurrent use.
type Joiner struct {
	features []string
	window   time.Duration
	queries  []*Query
	byReq    map[string]*Query
	actions  []feedback.Event
	stats    JoinStats
}

// NewJoiner joins impressions served with exactly these features to the
// actions that follow them within window.
func NewJoiner(features []string, window time.Duration) *Joiner {
	return &Joiner{features: features, window: window, byReq: make(map[string]*Query)}
}

// Add takes one event from the topic.
func (j *Joiner) Add(ev feedback.Event) {
	if ev.Type == feedback.TypeImpression {
		j.addImpression(ev)
		return
	}
	if _, ok := actionLabel(ev.Type); ok && ev.ItemID != "" {
		j.stats.Actions++
		j.actions = append(j.actions, ev)
	}
}

func (j *Joiner) addImpression(ev feedback.Event) {
	j.stats.Impressions++
	if !slices.Equal(ev.FeatureNames, j.features) {
		if len(ev.FeatureNames) == 0 {
			j.stats.NoFeatures++
		} else {
			j.stats.FeatureMismatch++
		}
		return
	}
	if ev.RequestID != "" {
		if _, dup := j.byReq[ev.RequestID]; dup {
			j.stats.Duplicates++
			return
		}
	}
	q := &Query{RequestID: ev.RequestID, UserID: ev.UserID, Time: ev.Timestamp, Bundle: ev.Bundle, Explore: ev.Explore}
	for _, it := range ev.Items {
		if len(it.Features) != len(j.features) {
			j.stats.NoFeatures++
			return
		}
		q.Items = append(q.Items, it.ItemID)
		q.Positions = append(q.Positions, it.Position)
		q.Features = append(q.Features, it.Features)
	}
	if len(q.Items) == 0 {
		return
	}
	q.Labels = make([]float32, len(q.Items))
	j.queries = append(j.queries, q)
	if ev.RequestID != "" {
		j.byReq[ev.RequestID] = q
	}
}

// Queries labels every impression with the best action on each of its
// items and returns them oldest first. An action names its impression by
// request id when the client sent it; otherwise it goes to the latest
// impression of the same user that showed the item. Either way it counts
// only from the impression's time to window after it: a click days later is
// not an answer to that page.
func (j *Joiner) Queries() ([]*Query, JoinStats) {
	type key struct{ user, item string }
	shown := make(map[key][]*Query)
	for _, q := range j.queries {
		for _, id := range q.Items {
			k := key{q.UserID, id}
			shown[k] = append(shown[k], q)
		}
	}
	for _, qs := range shown {
		slices.SortStableFunc(qs, func(a, b *Query) int { return a.Time.Compare(b.Time) })
	}
	inWindow := func(q *Query, at time.Time) bool {
		return !at.Before(q.Time) && at.Sub(q.Time) <= j.window
	}
	for _, a := range j.actions {
		label, _ := actionLabel(a.Type)
		var target *Query
		if q, ok := j.byReq[a.RequestID]; ok && a.RequestID != "" && slices.Contains(q.Items, a.ItemID) && inWindow(q, a.Timestamp) {
			target = q
		} else {
			qs := shown[key{a.UserID, a.ItemID}]
			for i := len(qs) - 1; i >= 0; i-- {
				if inWindow(qs[i], a.Timestamp) {
					target = qs[i]
					break
				}
			}
		}
		if target == nil {
			j.stats.Unattributed++
			continue
		}
		j.stats.Attributed++
		i := slices.Index(target.Items, a.ItemID)
		target.Labels[i] = max(target.Labels[i], label)
	}
	out := slices.Clone(j.queries)
	slices.SortStableFunc(out, func(a, b *Query) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.RequestID, b.RequestID))
	})
	return out, j.stats
}

// Dataset turns queries into a learning-to-rank data set, one group per
// query, rows in shown order. With power > 0 each row weighs
// (position+1)^power, its inverse examination propensity.
func Dataset(features []string, qs []*Query, power float64) *rank.Dataset {
	d := &rank.Dataset{Features: features}
	for _, q := range qs {
		for i := range q.Items {
			d.X = append(d.X, q.Features[i]...)
			d.Labels = append(d.Labels, q.Labels[i])
			if power > 0 {
				d.Weights = append(d.Weights, float32(math.Pow(float64(max(q.Positions[i], 0)+1), power)))
			}
		}
		d.Groups = append(d.Groups, len(q.Items))
	}
	return d
}

// WriteRows writes the queries as CSV, one row per shown item, for people
// to inspect what the model trained on: the join keys, the position and
// whether the page was randomized (explore, 0 or 1), the label and every
// feature under its name.
func WriteRows(w io.Writer, features []string, qs []*Query) error {
	cw := csv.NewWriter(w)
	header := append([]string{"request_id", "timestamp", "user_id", "item_id", "position", "explore", "label"}, features...)
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("write rows: %w", err)
	}
	rec := make([]string, len(header))
	for _, q := range qs {
		explore := "0"
		if q.Explore {
			explore = "1"
		}
		for i, id := range q.Items {
			rec[0], rec[1], rec[2], rec[3] = q.RequestID, q.Time.UTC().Format(time.RFC3339Nano), q.UserID, id
			rec[4] = strconv.Itoa(q.Positions[i])
			rec[5] = explore
			rec[6] = strconv.FormatFloat(float64(q.Labels[i]), 'g', -1, 32)
			for k, v := range q.Features[i] {
				rec[7+k] = strconv.FormatFloat(float64(v), 'g', -1, 32)
			}
			if err := cw.Write(rec); err != nil {
				return fmt.Errorf("write rows: %w", err)
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write rows: %w", err)
	}
	return nil
}
