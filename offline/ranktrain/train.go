package ranktrain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/rank"
)

// Config is what a training run decides with.
type Config struct {
	// Window is how long after an impression an action on one of its items
	// still counts as the answer to it.
	Window time.Duration `yaml:"window"`
	// TestFraction of the queries, the newest by impression time, is the
	// slice the gate compares the new and the current model on; the model
	// trains on the older rest.
	TestFraction float64 `yaml:"test_fraction"`
	// MinTestQueries is the fewest test queries with a positive label the
	// gate needs to decide anything; with fewer it keeps the current model.
	MinTestQueries int `yaml:"min_test_queries"`
	// PropensityPower corrects position bias: a row shown at position p
	// (0 = top) weighs (p+1)^power, the inverse of the examination
	// probability 1/(p+1)^power of a position-based click model, in
	// training and in the gate's NDCG. 0 trusts clicks as they are, which
	// rewards whatever order logged them. This is the assumed power, used
	// when PropensityEstimate is off or the randomized impressions are too
	// few to estimate it from.
	PropensityPower float64 `yaml:"propensity_power"`
	// PropensityEstimate fits the power to the impressions the server
	// showed in random order (explore), over the whole range read, train
	// and test slices alike.
	PropensityEstimate bool `yaml:"propensity_estimate"`
	// MinExploreClicks is the fewest clicks on explore impressions the
	// estimate needs; with fewer it is noise and PropensityPower is used.
	MinExploreClicks int                   `yaml:"min_explore_clicks"`
	Model            rank.LambdaMARTConfig `yaml:"model"`
	// Learner is what is fitted: LearnerTrees (LambdaMART), LearnerLinear
	// (a weight per feature by coordinate ascent on NDCG) or LearnerBoth,
	// in which case the one with the higher test NDCG faces the gate.
	Learner string `yaml:"learner"`
	// LinearFeatures, when set, are the only features the linear learner
	// weighs.
	LinearFeatures []string `yaml:"linear_features"`
}

// Learners of Config.Learner.
const (
	LearnerTrees  = "trees"
	LearnerLinear = "linear"
	LearnerBoth   = "both"
)

// linearPasses bounds the coordinate ascent's rounds.
const linearPasses = 5

// DefaultConfig attributes actions within 30 minutes, tests on the newest
// 20% of the queries and estimates position bias from 200 explore clicks
// or more, assuming 1/(p+1) examination below that.
func DefaultConfig() Config {
	return Config{Window: 30 * time.Minute, TestFraction: 0.2, MinTestQueries: 20,
		PropensityPower: 1, PropensityEstimate: true, MinExploreClicks: 200, Model: rank.DefaultLambdaMARTConfig(), Learner: LearnerTrees}
}

// Validate reports every invalid field, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.Window <= 0 {
		errs = append(errs, errors.New("window: must be > 0"))
	}
	if !(c.TestFraction > 0 && c.TestFraction < 1) {
		errs = append(errs, errors.New("test_fraction: must be in (0, 1)"))
	}
	if !(c.PropensityPower >= 0 && c.PropensityPower <= maxPropensityPower) {
		errs = append(errs, errors.New("propensity_power: must be in [0, 3]"))
	}
	if c.PropensityEstimate && c.MinExploreClicks < 1 {
		errs = append(errs, errors.New("min_explore_clicks: must be >= 1 when propensity_estimate is on"))
	}
	if c.Learner != LearnerTrees && c.Learner != LearnerLinear && c.Learner != LearnerBoth {
		errs = append(errs, fmt.Errorf("learner: want %s, %s or %s, got %q", LearnerTrees, LearnerLinear, LearnerBoth, c.Learner))
	}
	if c.MinTestQueries < 1 {
		errs = append(errs, errors.New("min_test_queries: must be >= 1"))
	}
	if err := c.Model.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, errors.New("model."+line))
		}
	}
	return errors.Join(errs...)
}

// Decisions a run ends with.
const (
	DecisionPromoted = "promoted"
	DecisionRejected = "rejected"
	DecisionFailed   = "failed"
)

// Options are the inputs of one run.
type Options struct {
	Config   Config
	Features []string // the bundle's feature names, in order
	// Events and Range select the topic and the part of it to read.
	Events eventlog.Config
	Range  eventlog.Range
	// Current is the ONNX ranker the next bundle carries unless this run
	// promotes a better one; CurrentName says which (a path, "linear").
	Current     []byte
	CurrentName string
	// Base, when set, is the linear model the trees are boosted from (and
	// carry: the new model scores base + trees); BaseName says which. See
	// rank.TrainLambdaMARTFrom for why the logged impressions need one.
	Base     *rank.Linear
	BaseName string
	// RowsPath, when set, receives every joined row as CSV.
	RowsPath string
	// ModelPath receives the trained model whatever the decision, so a
	// rejected model can be inspected; PromotePath receives it only when
	// it passes the gate (the file build.ranker names).
	ModelPath   string
	PromotePath string
	RunsDir     string // run history; every run adds a record
	// Judgments, when set, says the queries given to Train are judged
	// queries rather than joined impressions; it goes into the record.
	Judgments *Judgments
	Logger    *slog.Logger
	Progress  io.Writer
	Now       func() time.Time
}

// Run replays the events, joins and labels them, trains a tree ranker on
// the older queries, compares it with the current ranker on the newest
// ones and promotes it when it is not worse. The returned record is also
// written to o.RunsDir, whatever the outcome.
func Run(ctx context.Context, o Options) (*Record, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	rec := newRecord(o)
	if err := o.Config.Validate(); err != nil {
		return finish(o, rec, fmt.Errorf("ranktrain config: %w", err))
	}
	j := NewJoiner(o.Features, o.Config.Window)
	stats, err := eventlog.Replay(ctx, o.Events, o.Range, o.Logger, nil, func(ev feedback.Event, _ *kgo.Record) error {
		j.Add(ev)
		return nil
	})
	rec.Data.Events, rec.Data.Invalid = stats.Events, stats.Invalid
	if err != nil {
		return finish(o, rec, fmt.Errorf("read events: %w", err))
	}
	qs, js := j.Queries()
	o.progress("read %d events (%d invalid, skipped)", stats.Events, stats.Invalid)
	return Train(ctx, o, rec, qs, js)
}

// Train is Run after the replay: for callers (and tests) that have the
// queries already. rec may be nil.
func Train(ctx context.Context, o Options, rec *Record, qs []*Query, js JoinStats) (*Record, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if rec == nil {
		rec = newRecord(o)
	}
	rec.Join = js
	if err := o.Config.Validate(); err != nil {
		return finish(o, rec, fmt.Errorf("ranktrain config: %w", err))
	}
	if len(o.Current) == 0 {
		return finish(o, rec, errors.New("no current model to compare with"))
	}
	if len(qs) > 0 {
		rec.Data.Oldest, rec.Data.Newest = qs[0].Time, qs[len(qs)-1].Time
	}
	if o.RowsPath != "" {
		if err := atomicfile.Write(o.RowsPath, func(w io.Writer) error { return WriteRows(w, o.Features, qs) }); err != nil {
			return finish(o, rec, err)
		}
		rec.RowsFile = o.RowsPath
	}
	nTest := int(math.Round(o.Config.TestFraction * float64(len(qs))))
	train, test := qs[:len(qs)-nTest], qs[len(qs)-nTest:]
	// Explore pages from the whole range, test slice included, estimate the
	// bias: it is one number about how users scan a page, not about items,
	// and both slices must be weighted alike for the gate to be fair.
	prop := propensity(o.Config, qs)
	rec.Propensity = &prop
	trainSet, testSet := Dataset(o.Features, train, prop.Power), Dataset(o.Features, test, prop.Power)
	rec.Rows = RowCounts{TrainQueries: len(train), TrainRows: trainSet.Rows(), TestQueries: len(test), TestRows: testSet.Rows(),
		TrainPositive: informative(trainSet), TestPositive: informative(testSet)}
	if len(test) > 0 {
		rec.Rows.TestFrom = test[0].Time
	}
	o.progress("joined %d impressions into %d queries (%d attributed actions); train %d queries, test %d (from %s)",
		js.Impressions, len(qs), js.Attributed, len(train), len(test), rec.Rows.TestFrom.Format(time.RFC3339))
	o.progress("%s", prop.summary())
	if rec.Rows.TrainPositive == 0 {
		return finish(o, rec, errors.New("no training query has a clicked or bought item"))
	}

	k := o.Config.Model.NDCGAt
	model, err := fitModel(ctx, o, rec, trainSet, testSet)
	if err != nil {
		return finish(o, rec, err)
	}
	if o.ModelPath != "" {
		if err := os.MkdirAll(filepath.Dir(o.ModelPath), 0o755); err != nil {
			return finish(o, rec, fmt.Errorf("model dir: %w", err))
		}
		if err := atomicfile.WriteBytes(o.ModelPath, model); err != nil {
			return finish(o, rec, err)
		}
		rec.Model = o.ModelPath
	}
	// The gate: both models scored by ONNX Runtime, as they would serve, on
	// the same newest slice neither trained on.
	if rec.Metrics.CurrentTestNDCG, err = scoreNDCG(ctx, o.Current, o.Features, testSet, k); err != nil {
		return finish(o, rec, fmt.Errorf("score current model %s: %w", o.CurrentName, err))
	}
	o.progress("test slice NDCG@%d: new (%s) %.4f, current (%s) %.4f", k, rec.Metrics.Learner, rec.Metrics.TestNDCG, o.CurrentName, rec.Metrics.CurrentTestNDCG)
	switch {
	case rec.Rows.TestPositive < o.Config.MinTestQueries:
		rec.Decision = DecisionRejected
		rec.Reason = fmt.Sprintf("only %d test queries with a positive label, need %d", rec.Rows.TestPositive, o.Config.MinTestQueries)
	case rec.Metrics.TestNDCG < rec.Metrics.CurrentTestNDCG:
		rec.Decision = DecisionRejected
		rec.Reason = fmt.Sprintf("test NDCG@%d %.4f is worse than the current model's %.4f", k, rec.Metrics.TestNDCG, rec.Metrics.CurrentTestNDCG)
	default:
		rec.Decision = DecisionPromoted
		rec.Reason = fmt.Sprintf("test NDCG@%d %.4f >= current %.4f", k, rec.Metrics.TestNDCG, rec.Metrics.CurrentTestNDCG)
		if o.PromotePath != "" {
			if err := os.MkdirAll(filepath.Dir(o.PromotePath), 0o755); err != nil {
				return finish(o, rec, fmt.Errorf("promote: %w", err))
			}
			if err := atomicfile.WriteBytes(o.PromotePath, model); err != nil {
				return finish(o, rec, fmt.Errorf("promote: %w", err))
			}
			rec.PromotedTo = o.PromotePath
		}
	}
	o.progress("decision: %s (%s)", rec.Decision, rec.Reason)
	return finish(o, rec, nil)
}

// fitModel trains the configured learners on train, scores each on test
// with ONNX Runtime and returns the better one's model, its kind and test
// NDCG in rec.
func fitModel(ctx context.Context, o Options, rec *Record, train, test *rank.Dataset) ([]byte, error) {
	k := o.Config.Model.NDCGAt
	learner := o.Config.Learner
	var model []byte
	rec.Metrics.TestNDCG = math.Inf(-1)
	start := time.Now()
	if learner == LearnerTrees || learner == LearnerBoth {
		ens, rep, err := rank.TrainLambdaMARTFrom(ctx, o.Config.Model, train, o.Base)
		if err != nil {
			return nil, err
		}
		rec.Metrics.Rounds, rec.Metrics.Trees = rep.Rounds, rep.Trees
		rec.Metrics.TrainNDCG, rec.Metrics.ValidNDCG = rep.TrainNDCG, rep.ValidNDCG
		if model, err = rank.BuildTreeModel(ens); err != nil {
			return nil, err
		}
		ndcg, err := scoreNDCG(ctx, model, o.Features, test, k)
		if err != nil {
			return nil, fmt.Errorf("score new model: %w", err)
		}
		rec.Metrics.TestNDCG, rec.Metrics.Learner, rec.Metrics.TreesTestNDCG = ndcg, LearnerTrees, ndcg
		from := ""
		if o.Base != nil {
			from = " from " + o.BaseName
		}
		o.progress("trained %d trees%s in %d rounds (%.1fs): train NDCG@%d %.4f, validation %.4f, test %.4f",
			rep.Trees, from, rep.Rounds, time.Since(start).Seconds(), k, rep.TrainNDCG, rep.ValidNDCG, ndcg)
	}
	if learner == LearnerLinear || learner == LearnerBoth {
		lin, ndcg, err := fitLinear(ctx, o, rec, train, test)
		if err != nil {
			return nil, err
		}
		if lin != nil && ndcg > rec.Metrics.TestNDCG {
			model, rec.Metrics.TestNDCG, rec.Metrics.Learner = lin, ndcg, LearnerLinear
		}
	}
	rec.Metrics.TrainSeconds = time.Since(start).Seconds()
	return model, nil
}

// fitLinear fits the linear model and returns it with its test NDCG; nil
// when, beside the trees, no feature it may weigh varies (recorded in rec).
func fitLinear(ctx context.Context, o Options, rec *Record, train, test *rank.Dataset) ([]byte, float64, error) {
	k := o.Config.Model.NDCGAt
	start := time.Now()
	w, rep, err := rank.TrainLinear(ctx, train, k, linearPasses, o.Config.LinearFeatures)
	if errors.Is(err, rank.ErrConstantFeatures) && o.Config.Learner == LearnerBoth {
		rec.Metrics.LinearSkipped = err.Error()
		o.progress("no linear model: %v; the trees face the gate", err)
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	lin, err := rank.BuildLinearModel(o.Features, w, 0)
	if err != nil {
		return nil, 0, err
	}
	ndcg, err := scoreNDCG(ctx, lin, o.Features, test, k)
	if err != nil {
		return nil, 0, fmt.Errorf("score new linear model: %w", err)
	}
	rec.Metrics.LinearTestNDCG, rec.Metrics.LinearTrainNDCG, rec.Metrics.LinearPasses = ndcg, rep.TrainNDCG, rep.Passes
	o.progress("fitted a linear model by coordinate ascent in %d passes (%.1fs): train NDCG@%d %.4f (best single feature %.4f), test %.4f; weights %s",
		rep.Passes, time.Since(start).Seconds(), k, rep.TrainNDCG, rep.StartNDCG, ndcg, nonZero(o.Features, w))
	return lin, ndcg, nil
}

// nonZero lists the non-zero weights as name=value.
func nonZero(features []string, w []float32) string {
	var parts []string
	for f, x := range w {
		if x != 0 {
			parts = append(parts, fmt.Sprintf("%s=%.4g", features[f], x))
		}
	}
	return strings.Join(parts, " ")
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// informative counts the queries with at least one positive label, the only
// ones NDCG can tell models apart on.
func informative(d *rank.Dataset) int {
	n, start := 0, 0
	for _, g := range d.Groups {
		for _, l := range d.Labels[start : start+g] {
			if l > 0 {
				n++
				break
			}
		}
		start += g
	}
	return n
}

// scoreNDCG scores d with the ONNX model and returns its NDCG@k. ONNX
// Runtime must be initialised.
func scoreNDCG(ctx context.Context, model []byte, features []string, d *rank.Dataset, k int) (float64, error) {
	if d.Rows() == 0 {
		return 0, nil
	}
	f, err := os.CreateTemp("", "ranker-*.onnx")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(model); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	s, err := rank.OpenScorer(rank.ScorerConfig{ModelPath: f.Name(), Sessions: 1}, features)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	nf := len(features)
	scores := make([]float32, 0, d.Rows())
	start := 0
	for _, g := range d.Groups {
		out, err := s.Score(ctx, d.X[start*nf:(start+g)*nf], g)
		if err != nil {
			return 0, err
		}
		scores = append(scores, out...)
		start += g
	}
	return rank.WeightedNDCG(scores, d.Labels, d.Weights, d.Groups, k), nil
}

// finish stamps and stores the record; a failed run is recorded too, so the
// history shows every attempt.
func finish(o Options, rec *Record, runErr error) (*Record, error) {
	rec.Finished = o.Now().UTC()
	if runErr != nil {
		rec.Decision, rec.Reason = DecisionFailed, runErr.Error()
	}
	if o.RunsDir != "" {
		if err := WriteRecord(o.RunsDir, rec); err != nil {
			return rec, errors.Join(runErr, err)
		}
	}
	if runErr != nil {
		return rec, fmt.Errorf("train rank: %w", runErr)
	}
	return rec, nil
}
