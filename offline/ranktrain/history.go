package ranktrain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/internal/strictjson"
	"github.com/recsys-dev/recsys/rank"
)

// Record is one training run in the run history: what data it read, what it
// trained with, what it measured and what it decided.
type Record struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Data     DataRange `json:"data"`
	Join     JoinStats `json:"join"`
	Rows     RowCounts `json:"rows"`
	Params   Params    `json:"params"`
	// Propensity is the position-bias correction the run weighted rows
	// with, set once the queries are joined.
	Propensity *Propensity `json:"propensity,omitempty"`
	Metrics    Metrics     `json:"metrics"`
	Decision   string      `json:"decision"`
	Reason     string      `json:"reason"`
	RowsFile   string      `json:"rows_file,omitempty"`
	Model      string      `json:"model,omitempty"`
	// PromotedTo is the file the model was copied to (build.ranker), set
	// only when the run promoted it.
	PromotedTo string `json:"promoted_to,omitempty"`
	// Judgments describes the graded judgments a run trained on instead
	// of logged impressions (train rank --judgments).
	Judgments *Judgments `json:"judgments,omitempty"`
	// Steps are a pipeline run's steps in order (recsys nightly).
	Steps []Step `json:"steps,omitempty"`
}

// Step is one step of a pipeline run: ok, refused (a gate said no) or
// failed, with what it did or why not.
type Step struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"`
	Detail  string  `json:"detail"`
	Seconds float64 `json:"seconds"`
}

// Judgments is where a judgment-trained run's labels came from and how
// many of the relevant items retrieval put among the candidates.
type Judgments struct {
	File        string `json:"file"`
	Bundle      string `json:"bundle"`
	Queries     int    `json:"queries"`
	Informative int    `json:"informative_queries"`
	Relevant    int    `json:"relevant"`
	Retrieved   int    `json:"retrieved"`
	Unknown     int    `json:"unknown_items"`
	// CrossFit is the number of parts the queries were answered in, each
	// by an embedding model that did not train on it (0: one bundle).
	CrossFit int `json:"cross_fit,omitempty"`
}

// DataRange is the part of the topic a run read and what was in it.
type DataRange struct {
	From        time.Time       `json:"from,omitzero"`
	FromOffsets map[int32]int64 `json:"from_offsets,omitempty"`
	Until       time.Time       `json:"until,omitzero"`
	Events      int             `json:"events"`
	Invalid     int             `json:"invalid"`
	// Oldest and Newest are the impression times of the queries joined.
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
}

// RowCounts sizes the two sides of the time split.
type RowCounts struct {
	TrainQueries  int       `json:"train_queries"`
	TrainRows     int       `json:"train_rows"`
	TrainPositive int       `json:"train_queries_with_positives"`
	TestQueries   int       `json:"test_queries"`
	TestRows      int       `json:"test_rows"`
	TestPositive  int       `json:"test_queries_with_positives"`
	TestFrom      time.Time `json:"test_from,omitzero"`
}

// Params are the settings the run trained with.
type Params struct {
	Window       string                `json:"window"`
	TestFraction float64               `json:"test_fraction"`
	Features     []string              `json:"features"`
	Current      string                `json:"current_model"`
	Model        rank.LambdaMARTConfig `json:"model"`
	// BoostFrom names the model the trees were boosted from; empty: none.
	BoostFrom string `json:"boost_from,omitempty"`
}

// Metrics are what the run measured. The test NDCGs are on the same newest
// slice, both models scored by ONNX Runtime.
type Metrics struct {
	Rounds          int     `json:"rounds"`
	Trees           int     `json:"trees"`
	TrainSeconds    float64 `json:"train_seconds"`
	TrainNDCG       float64 `json:"train_ndcg"`
	ValidNDCG       float64 `json:"valid_ndcg"`
	TestNDCG        float64 `json:"test_ndcg"`
	CurrentTestNDCG float64 `json:"current_test_ndcg"`
	// Learner is the kind of the new model the gate judged (trees or
	// linear); each learner fitted has its test NDCG (0: not fitted).
	Learner         string  `json:"learner,omitempty"`
	TreesTestNDCG   float64 `json:"trees_test_ndcg,omitempty"`
	LinearTestNDCG  float64 `json:"linear_test_ndcg,omitempty"`
	LinearTrainNDCG float64 `json:"linear_train_ndcg,omitempty"`
	LinearPasses    int     `json:"linear_passes,omitempty"`
	LinearSkipped   string  `json:"linear_skipped,omitempty"`
}

// Kinds of runs in the history: a ranker trained on logged impressions,
// or on graded judgments.
const (
	KindRank          = "train-rank"
	KindRankJudgments = "train-rank-judgments"
)

func newRecord(o Options) *Record {
	now := o.Now().UTC()
	kind := KindRank
	if o.Judgments != nil {
		kind = KindRankJudgments
	}
	return &Record{
		ID:        now.Format("20060102T150405.000000000Z") + "-rank",
		Kind:      kind,
		Judgments: o.Judgments,
		Started:   now,
		Data:      DataRange{From: o.Range.From, FromOffsets: o.Range.FromOffsets, Until: o.Range.Until},
		Params: Params{Window: o.Config.Window.String(), TestFraction: o.Config.TestFraction,
			Features: o.Features, Current: o.CurrentName, Model: o.Config.Model, BoostFrom: o.BaseName},
	}
}

// WriteRecord stores r as <dir>/<id>.json; records are never rewritten.
func WriteRecord(dir string, r *Record) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write run record: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write run record: %w", err)
	}
	return atomicfile.WriteBytes(filepath.Join(dir, r.ID+".json"), append(b, '\n'))
}

// ReadRecords reads every record in dir, oldest first. A missing dir is an
// empty history; a damaged record is an error naming its file.
func ReadRecords(dir string) ([]Record, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read run history: %w", err)
	}
	var out []Record
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read run history: %w", err)
		}
		var r Record
		if jerr := strictjson.Decode(b, &r, ""); jerr != nil {
			return nil, fmt.Errorf("read run record %s: %w", path, jerr)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return a.Started.Compare(b.Started) })
	return out, nil
}
