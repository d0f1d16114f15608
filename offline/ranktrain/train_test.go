package ranktrain

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/ort/orttest"
	"github.com/recsys-dev/recsys/rank"
)

var features = []string{"retrieval_score", "quality", "noise"}

// simEvents simulates served pages: ten items each, shown by retrieval
// score, clicked (and sometimes bought) with a probability that grows with
// a hidden quality the retrieval score ignores. flip reverses what users
// like from query flipAfter on, which makes the newest slice disagree with
// the past.
func simEvents(seed uint64, queries int, start time.Time, flipAfter int) []feedback.Event {
	return simEventsBiased(seed, queries, start, flipAfter, 0)
}

// simEventsBiased is simEvents with position bias: a user examines
// position p with probability 1/(p+1)^bias before deciding to click.
func simEventsBiased(seed uint64, queries int, start time.Time, flipAfter int, bias float64) []feedback.Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	var evs []feedback.Event
	for q := range queries {
		at := start.Add(time.Duration(q) * time.Second)
		req, user := fmt.Sprintf("r%05d", q), fmt.Sprintf("u%d", q%50)
		imp := feedback.Event{Type: feedback.TypeImpression, SchemaVersion: feedback.SchemaVersion, RequestID: req,
			UserID: user, Timestamp: at, FeatureNames: features, Surface: feedback.SurfaceSearch}
		var acts []feedback.Event
		for pos := range 10 {
			quality := rng.Float32()
			id := fmt.Sprintf("i%d", rng.IntN(100000))
			imp.Items = append(imp.Items, feedback.ImpressionItem{ItemID: id, Position: pos,
				Features: []float32{1 - float32(pos)/10, quality, rng.Float32()}})
			like := quality
			if q >= flipAfter {
				like = 1 - quality
			}
			exam := float32(math.Pow(float64(pos+1), -bias))
			if rng.Float32() < exam*like*like*0.5 {
				typ := feedback.TypeClick
				if rng.Float32() < 0.3 {
					typ = feedback.TypePurchase
				}
				acts = append(acts, feedback.Event{Type: typ, SchemaVersion: feedback.SchemaVersion, RequestID: req,
					UserID: user, ItemID: id, Timestamp: at.Add(time.Duration(1+pos) * time.Second)})
			}
		}
		evs = append(evs, imp)
		evs = append(evs, acts...)
	}
	return evs
}

func join(evs []feedback.Event) ([]*Query, JoinStats) {
	j := NewJoiner(features, 30*time.Minute)
	for _, ev := range evs {
		j.Add(ev)
	}
	return j.Queries()
}

// linear is the current model of the tests: retrieval order only.
func linear(t *testing.T, w ...float32) []byte {
	t.Helper()
	b, err := rank.BuildLinearModel(features, w, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testOptions(t *testing.T, current []byte) Options {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Model.Trees = 60
	return Options{
		Config: cfg, Features: features, Current: current, CurrentName: "linear",
		RowsPath: filepath.Join(dir, "rows.csv"), ModelPath: filepath.Join(dir, "candidate.onnx"),
		PromotePath: filepath.Join(dir, "models", "ranker.onnx"), RunsDir: filepath.Join(dir, "runs"),
	}
}

func TestTrain_Gate(t *testing.T) {
	orttest.Init(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		flipAfter int
		current   []float32
		decision  string
	}{
		// Clicks follow quality; the current ranker ignores it.
		{"better than retrieval order is promoted", 1 << 30, []float32{1, 0, 0}, DecisionPromoted},
		// Tastes flip in the newest slice: what was learnt is now wrong,
		// and a current model that happens to follow the new taste wins.
		{"worse on the newest slice is rejected", 1600, []float32{0, -1, 0}, DecisionRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qs, js := join(simEvents(1, 2000, t0, tt.flipAfter))
			o := testOptions(t, linear(t, tt.current...))
			var progress bytes.Buffer
			o.Progress = &progress
			rec, err := Train(ctx, o, nil, qs, js)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", progress.String())
			if rec.Decision != tt.decision {
				t.Fatalf("decision %s (%s), want %s", rec.Decision, rec.Reason, tt.decision)
			}
			if rec.Rows.TrainQueries != 1600 || rec.Rows.TestQueries != 400 || rec.Rows.TrainRows != 16000 {
				t.Errorf("rows %+v", rec.Rows)
			}
			if !rec.Rows.TestFrom.Equal(t0.Add(1600 * time.Second)) {
				t.Errorf("test slice starts %v, want the 1600th query", rec.Rows.TestFrom)
			}
			_, promotedErr := os.Stat(o.PromotePath)
			if promoted := promotedErr == nil; promoted != (tt.decision == DecisionPromoted) || (rec.PromotedTo != "") != promoted {
				t.Errorf("promoted file exists %v, record says %q", promoted, rec.PromotedTo)
			}
			if _, err := os.Stat(o.ModelPath); err != nil {
				t.Errorf("candidate model not kept: %v", err)
			}
			rows, err := os.ReadFile(o.RowsPath)
			if err != nil || strings.Count(string(rows), "\n") != 20001 {
				t.Errorf("rows file: %d lines, %v", strings.Count(string(rows), "\n"), err)
			}
			hist, err := ReadRecords(o.RunsDir)
			if err != nil || len(hist) != 1 || hist[0].ID != rec.ID || hist[0].Decision != rec.Decision ||
				hist[0].Metrics != rec.Metrics {
				t.Fatalf("history %+v, %v", hist, err)
			}
		})
	}
	t.Run("failed runs are recorded", func(t *testing.T) {
		o := testOptions(t, linear(t, 1, 0, 0))
		_, err := Train(ctx, o, nil, nil, JoinStats{})
		if err == nil || !strings.Contains(err.Error(), "no training query has a clicked or bought item") {
			t.Fatalf("err = %v", err)
		}
		hist, err := ReadRecords(o.RunsDir)
		if err != nil || len(hist) != 1 || hist[0].Decision != DecisionFailed {
			t.Fatalf("history %+v, %v", hist, err)
		}
	})
}

// TestRun replays the events from a Kafka-protocol broker, the path
// `recsys train rank` takes.
func TestRun(t *testing.T) {
	orttest.Init(t)
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := eventlog.Config{Brokers: b.Addrs(), Topic: "ranktrain.events", ClientID: "ranktrain-test",
		ProduceTimeout: 10 * time.Second, Partitions: 2}
	p, err := eventlog.NewProducer(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if err := p.EnsureTopic(ctx); err != nil {
		t.Fatal(err)
	}
	evs := simEvents(2, 600, time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond), 1<<30)
	for _, ev := range evs {
		p.PublishAsync(ev)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t, linear(t, 1, 0, 0))
	o.Events = cfg
	o.Config.MinTestQueries = 5
	rec, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Data.Events != len(evs) || rec.Join.Impressions != 600 || rec.Rows.TrainQueries+rec.Rows.TestQueries != 600 {
		t.Fatalf("read %d of %d events, %+v, %+v", rec.Data.Events, len(evs), rec.Join, rec.Rows)
	}
	if rec.Decision != DecisionPromoted || rec.Metrics.TestNDCG <= rec.Metrics.CurrentTestNDCG {
		t.Fatalf("decision %s: %s", rec.Decision, rec.Reason)
	}
}

// TestDataset_PropensityWeights: clicks examined with probability
// 1/(position+1) pile up at the top whatever the item, and the shown order
// follows retrieval_score. A model trained on raw clicks leans on that
// position proxy; inverse-propensity weights recover the hidden quality.
func TestDataset_PropensityWeights(t *testing.T) {
	qs, _ := join(simEventsBiased(5, 3000, t0, 1<<30, 1))
	// The truth on fresh pages: relevance is quality, whatever the position.
	fresh, _ := join(simEvents(6, 500, t0, 1<<30))
	truth := Dataset(features, fresh, 0)
	for i := range truth.Labels {
		truth.Labels[i] = float32(math.Floor(float64(truth.X[i*3+1]) * 3)) // quality in grades 0..2
	}
	ndcg := func(power float64) float64 {
		cfg := DefaultConfig().Model
		cfg.Trees = 80
		ens, _, err := rank.TrainLambdaMART(context.Background(), cfg, Dataset(features, qs, power))
		if err != nil {
			t.Fatal(err)
		}
		return rank.NDCG(ens.ScoreRows(truth.X, truth.Rows()), truth.Labels, truth.Groups, 10)
	}
	raw, ipw := ndcg(0), ndcg(1)
	t.Logf("true NDCG@10: raw clicks %.4f, inverse propensity weighted %.4f", raw, ipw)
	if ipw <= raw {
		t.Fatalf("weighting did not help: raw %.4f, weighted %.4f", raw, ipw)
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		err    string
	}{
		{"default", func(*Config) {}, ""},
		{"window", func(c *Config) { c.Window = 0 }, "window: must be > 0"},
		{"test fraction", func(c *Config) { c.TestFraction = 1 }, "test_fraction: must be in (0, 1)"},
		{"model key is named", func(c *Config) { c.Model.Trees = 0 }, "model.trees: must be > 0"},
		{"propensity power", func(c *Config) { c.PropensityPower = -1 }, "propensity_power: must be in [0, 3]"},
		{"propensity power is checked when estimating", func(c *Config) { c.PropensityEstimate, c.PropensityPower = true, 3.5 },
			"propensity_power: must be in [0, 3]"},
		{"min explore clicks", func(c *Config) { c.MinExploreClicks = 0 }, "min_explore_clicks: must be >= 1 when propensity_estimate is on"},
		{"min explore clicks unused without estimation", func(c *Config) { c.PropensityEstimate, c.MinExploreClicks = false, 0 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestTrain_Learners(t *testing.T) {
	orttest.Init(t)
	ctx := context.Background()
	qs, js := join(simEvents(5, 2000, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), 1<<30))
	run := func(learner string, only ...string) *Record {
		t.Helper()
		o := testOptions(t, linear(t, 1, 0, 0))
		o.Config.Learner, o.Config.LinearFeatures = learner, only
		rec, err := Train(ctx, o, nil, qs, js)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	lin := run(LearnerLinear)
	m := lin.Metrics
	if m.Learner != LearnerLinear || m.TreesTestNDCG != 0 || m.LinearTestNDCG != m.TestNDCG || m.LinearPasses < 1 ||
		lin.Decision != DecisionPromoted || !(m.TestNDCG > m.CurrentTestNDCG) {
		t.Errorf("linear: %s %+v", lin.Decision, m)
	}
	both := run(LearnerBoth)
	m = both.Metrics
	best := LearnerTrees
	if m.LinearTestNDCG > m.TreesTestNDCG {
		best = LearnerLinear
	}
	if m.TreesTestNDCG == 0 || m.LinearTestNDCG == 0 || m.Learner != best || m.TestNDCG != max(m.TreesTestNDCG, m.LinearTestNDCG) {
		t.Errorf("both: %+v", m)
	}
	// Clicks follow quality: a linear model of noise alone loses to the
	// trees, which face the gate.
	noise := run(LearnerBoth, "noise")
	if m := noise.Metrics; m.Learner != LearnerTrees || !(m.LinearTestNDCG < m.TreesTestNDCG) {
		t.Errorf("linear on noise only: %+v", m)
	}
	c := DefaultConfig()
	c.Learner = "forest"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "learner:") {
		t.Errorf("learner forest: %v", err)
	}
}
