package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/world"
)

// publishRankEvents logs served pages whose clicks follow log_popularity,
// which the default linear ranker weighs only lightly.
func publishRankEvents(t *testing.T, kcfg eventlog.Config, names []string, queries int) {
	t.Helper()
	p, err := eventlog.NewProducer(kcfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if err := p.EnsureTopic(ctx); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	start := time.Now().UTC().Add(-2 * time.Hour)
	for q := range queries {
		at := start.Add(time.Duration(q) * time.Second)
		req, user := fmt.Sprintf("r%d", q), fmt.Sprintf("u%d", q%20)
		imp := feedback.Event{Type: feedback.TypeImpression, SchemaVersion: feedback.SchemaVersion, RequestID: req,
			UserID: user, Timestamp: at, FeatureNames: names, Surface: feedback.SurfaceSearch}
		for pos := range 10 {
			x := make([]float32, len(names))
			for j := range x {
				x[j] = rng.Float32()
			}
			x[0], x[1] = 1-float32(pos)/10, float32(pos) // retrieval score and rank
			id := fmt.Sprintf("i%d", rng.IntN(5000))
			imp.Items = append(imp.Items, feedback.ImpressionItem{ItemID: id, Position: pos, Features: x})
			if rng.Float32() < x[2]*x[2]*0.6 { // x[2] is log_popularity in the default spec
				p.PublishAsync(feedback.Event{Type: feedback.TypeClick, SchemaVersion: feedback.SchemaVersion,
					RequestID: req, UserID: user, ItemID: id, Timestamp: at.Add(time.Second)})
			}
		}
		p.PublishAsync(imp)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// rankEnv starts an embedded broker and points the shipped config at it and
// at dir through RECSYS_* variables, as an operator would; it returns the
// config and its Kafka section with the broker's address.
func rankEnv(t *testing.T, dir string) (*config.Config, eventlog.Config) {
	t.Helper()
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	b, err := eventlog.StartBroker(eventlog.BrokerConfig{Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg, err := config.Load("../../config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	kcfg := cfg.Kafka.Config
	kcfg.Brokers = b.Addrs()
	t.Setenv("RECSYS_KAFKA_BROKERS", strings.Join(b.Addrs(), ","))
	t.Setenv("RECSYS_BUNDLES_DIR", filepath.Join(dir, "bundles"))
	t.Setenv("RECSYS_BUILD_RANKER", filepath.Join(dir, "models", "ranker.onnx"))
	t.Setenv("RECSYS_ONNXRUNTIME_LIBRARY", lib)
	return cfg, kcfg
}

func TestTrainRank(t *testing.T) {
	dir := t.TempDir()
	cfg, kcfg := rankEnv(t, dir)
	publishRankEvents(t, kcfg, cfg.Rank.Names(), 800)

	ranker := filepath.Join(dir, "models", "ranker.onnx")
	var stdout bytes.Buffer
	err := dispatch(context.Background(), []string{"train", "rank", "--config", "../../config.yaml", "--trees", "50"}, &stdout, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	for _, want := range []string{"joined 800 impressions into 800 queries", "decision: promoted", "promoted to " + ranker} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, f := range []string{ranker, filepath.Join(dir, "ranktrain", "rows.csv"), filepath.Join(dir, "ranktrain", "candidate.onnx")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	// On the event log the trees are boosted from the linear ranker, and
	// the model carries it.
	if want := "trees from the linear ranker of rank.weights"; !strings.Contains(stdout.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, stdout.String())
	}
	if got := explainMethod(t, ranker, cfg.Rank.Names()); got != rank.ExplainLinearTreeSHAP {
		t.Errorf("the promoted model explains by %q, want %q", got, rank.ExplainLinearTreeSHAP)
	}
	candidate := filepath.Join(dir, "ranktrain", "candidate.onnx")
	stdout.Reset()
	if err := dispatch(context.Background(), []string{"train", "rank", "--config", "../../config.yaml", "--trees", "50", "--no-promote",
		"--boost-from", "none"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := explainMethod(t, candidate, cfg.Rank.Names()); got != rank.ExplainTreeSHAP || strings.Contains(stdout.String(), "trees from") {
		t.Errorf("--boost-from none: the model explains by %q, want %q; output:\n%s", got, rank.ExplainTreeSHAP, stdout.String())
	}
	err = dispatch(context.Background(), []string{"train", "rank", "--config", "../../config.yaml", "--boost-from", "lineaer"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `--boost-from: want linear or none, got "lineaer"`) {
		t.Errorf("--boost-from lineaer: %v", err)
	}

	// A second run compares with the promoted model, not the linear one.
	stdout.Reset()
	err = dispatch(context.Background(), []string{"train", "rank", "--config", "../../config.yaml", "--trees", "50", "--no-promote"}, &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "the promoted model "+ranker) {
		t.Errorf("second run did not gate against the promoted model:\n%s", stdout.String())
	}

	stdout.Reset()
	if err := dispatch(context.Background(), []string{"runs", "--config", "../../config.yaml"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "promoted") || !strings.Contains(lines[2], "train-rank") {
		t.Fatalf("runs listing:\n%s", stdout.String())
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		name                 string
		from, offsets, until string
		want                 eventlog.Range
		err                  string
	}{
		{"empty", "", "", "", eventlog.Range{}, ""},
		{"times", "2026-11-01T00:00:00Z", "", "2026-11-02T00:00:00Z",
			eventlog.Range{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}, ""},
		{"offsets", "", "0:10, 2:5", "", eventlog.Range{FromOffsets: map[int32]int64{0: 10, 2: 5}}, ""},
		{"bad time", "yesterday", "", "", eventlog.Range{}, "--from"},
		{"bad offsets", "", "0=10", "", eventlog.Range{}, `--from-offsets: "0=10" is not partition:offset`},
		{"negative offset", "", "0:-1", "", eventlog.Range{}, "--from-offsets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRange(tt.from, tt.offsets, tt.until)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.From.Equal(tt.want.From) || !got.Until.Equal(tt.want.Until) || fmt.Sprint(got.FromOffsets) != fmt.Sprint(tt.want.FromOffsets) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Replaying a time range is deterministic: two runs of `train rank --from`
// over the same range write byte-identical rows, and --from really bounds
// what is read (records are stamped with their log time).
func TestTrainRank_ReplayFrom(t *testing.T) {
	dir := t.TempDir()
	cfg, kcfg := rankEnv(t, dir)
	t0 := time.Now().UTC().Add(-time.Second)
	publishRankEvents(t, kcfg, cfg.Rank.Names(), 300)
	time.Sleep(20 * time.Millisecond) // the next batch gets later log times
	t1 := time.Now().UTC()
	publishRankEvents(t, kcfg, cfg.Rank.Names(), 200)

	run := func(from time.Time, rows string) string {
		t.Helper()
		var stdout bytes.Buffer
		err := dispatch(context.Background(), []string{"train", "rank", "--config", "../../config.yaml", "--trees", "20",
			"--no-promote", "--from", from.Format(time.RFC3339Nano), "--rows", rows}, &stdout, io.Discard)
		if err != nil {
			t.Fatalf("%v\n%s", err, stdout.String())
		}
		return stdout.String()
	}
	a, bb := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")
	outA := run(t0, a)
	run(t0, bb)
	rowsA, _ := os.ReadFile(a)
	rowsB, _ := os.ReadFile(bb)
	if len(rowsA) == 0 || !bytes.Equal(rowsA, rowsB) {
		t.Fatalf("two replays of one range differ (%d vs %d bytes)", len(rowsA), len(rowsB))
	}
	if !strings.Contains(outA, "joined 500 impressions") {
		t.Fatalf("replay from before both batches:\n%s", outA)
	}
	if out := run(t1, filepath.Join(dir, "c.csv")); !strings.Contains(out, "joined 200 impressions") {
		t.Fatalf("replay from between the batches:\n%s", out)
	}
}

// writeTitleBEIR writes a BEIR folder where lexical scoring alone is wrong
// in a way a ranker can learn: each query's relevant document has the
// query word once, in its title; two distractors repeat it in their text,
// which BM25 scores higher. title_term_share tells them apart.
func writeTitleBEIR(t *testing.T, queries int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "qrels"), 0o755); err != nil {
		t.Fatal(err)
	}
	var corpus, qs, qrels strings.Builder
	qrels.WriteString("query-id\tcorpus-id\tscore\n")
	for i := range queries {
		w := fmt.Sprintf("zq%dx", i)
		fmt.Fprintf(&corpus, `{"_id": "r%d", "title": "%s study", "text": "a report on outcomes in adults"}`+"\n", i, w)
		for j := range 2 {
			fmt.Fprintf(&corpus, `{"_id": "d%d-%d", "title": "review %d", "text": "%s %s %s outcomes"}`+"\n", i, j, j, w, w, w)
		}
		fmt.Fprintf(&qs, `{"_id": "q%d", "text": "%s outcomes"}`+"\n", i, w)
		fmt.Fprintf(&qrels, "q%d\tr%d\t1\n", i, i)
	}
	for name, body := range map[string]string{"corpus.jsonl": corpus.String(), "queries.jsonl": qs.String(), "qrels/train.tsv": qrels.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ndcgOf(t *testing.T, out string) float64 {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "nDCG@10     "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no nDCG@10 in:\n%s", out)
	return 0
}

// TestTrainRank_JudgmentsBEIR trains LambdaMART on judged queries answered
// by a corpus bundle and checks the model, the run record and that eval
// search with it beats the linear ranker on the queries it learned from.
func TestTrainRank_JudgmentsBEIR(t *testing.T) {
	dir := t.TempDir()
	rankEnv(t, dir)
	beirDir := writeTitleBEIR(t, 120)
	qrels := filepath.Join(beirDir, "qrels", "train.tsv")
	model, runs := filepath.Join(dir, "judged.onnx"), filepath.Join(dir, "runs")
	var stdout bytes.Buffer
	err := dispatch(context.Background(), []string{"train", "rank", "--config", "../../config.yaml", "--judgments", qrels,
		"--beir", beirDir, "--retrieval", "lexical", "--out", model, "--no-promote", "--runs", runs, "--min-test-queries", "5"},
		&stdout, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	for _, want := range []string{"120 queries, answered by the corpus bundle", "candidates hold 120 of 120 relevant judgments",
		"position bias: estimation off", "decision: promoted"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	entries, err := os.ReadDir(runs)
	if err != nil || len(entries) != 1 {
		t.Fatalf("run history: %v, %v", entries, err)
	}
	rec, err := os.ReadFile(filepath.Join(runs, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kind": "train-rank-judgments"`, `"file": "` + qrels + `"`, `"retrieved": 120`} {
		if !strings.Contains(string(rec), want) {
			t.Errorf("record lacks %s:\n%s", want, rec)
		}
	}

	eval := func(extra ...string) float64 {
		var out bytes.Buffer
		args := append([]string{"eval", "search", "--config", "../../config.yaml", "--beir", beirDir, "--qrels", qrels,
			"--retrieval", "lexical"}, extra...)
		if err := dispatch(context.Background(), args, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		return ndcgOf(t, out.String())
	}
	linear, learned := eval(), eval("--ranker", model)
	t.Logf("nDCG@10 lexical with the linear ranker %.4f, with the judged ranker %.4f", linear, learned)
	if learned <= linear+0.1 {
		t.Errorf("nDCG@10 with the judged ranker %.4f, linear %.4f: the ranker should learn the title signal", learned, linear)
	}

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"--beir", beirDir},                   // without --judgments
			{"--judgments", qrels, "--fold", "1"}, // --fold needs --beir
			{"--judgments", qrels, "--beir", beirDir, "--cross-fit", "1"},
			{"--judgments", qrels, "--beir", beirDir, "--qrels", qrels},
		} {
			args = append([]string{"train", "rank", "--config", "../../config.yaml", "--no-promote", "--runs", runs}, args...)
			if err := dispatch(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Errorf("%v: accepted", args)
			}
		}
	})
}

// TestTrainRank_JudgmentsTSV trains on hand-written catalog judgments,
// answered by the current bundle.
func TestTrainRank_JudgmentsTSV(t *testing.T) {
	dir := t.TempDir()
	rankEnv(t, dir)
	catalogPath := filepath.Join(dir, "world", "catalog.jsonl")
	if err := world.Write(filepath.Join(dir, "world"), world.Config{Items: 1000, Users: 10, Seed: 5}, nil); err != nil {
		t.Fatal(err)
	}
	if err := dispatch(context.Background(), []string{"build", "--config", "../../config.yaml", "--catalog", catalogPath}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	items, err := catalog.ReadFile(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	var tsv strings.Builder
	tsv.WriteString("query\titem\tgrade\n")
	for i := range 60 {
		it := items[i]
		fmt.Fprintf(&tsv, "%s\t%s\t2\n", strings.ToLower(it.Title), it.ID)
	}
	path := filepath.Join(dir, "judgments.tsv")
	if err := os.WriteFile(path, []byte(tsv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	err = dispatch(context.Background(), []string{"train", "rank", "--config", "../../config.yaml", "--judgments", path,
		"--no-promote", "--runs", filepath.Join(dir, "runs"), "--min-test-queries", "1"}, &stdout, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	for _, want := range []string{"60 queries, answered by bundle v", "decision: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// explainMethod opens the ONNX ranker at path as the server does and
// returns how it explains a score.
func explainMethod(t *testing.T, path string, features []string) string {
	t.Helper()
	s, err := rank.OpenScorer(rank.ScorerConfig{ModelPath: path, Sessions: 1}, features)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	method, _, _, err := s.Explain(make([]float32, len(features)))
	if err != nil {
		t.Fatalf("%s explains nothing: %v", path, err)
	}
	return method
}
