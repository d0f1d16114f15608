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

	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/internal/ort"
)

// publishRankEvents logs served pages whose clicks follow log_popularity,
// which the default linear ranker weighs only lightly.
func publishRankEvents(t *testing.T, kcfg feedback.Config, names []string, queries int) {
	t.Helper()
	p, err := feedback.NewProducer(kcfg, nil, nil)
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
func rankEnv(t *testing.T, dir string) (*config.Config, feedback.Config) {
	t.Helper()
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	b, err := feedback.StartBroker(feedback.BrokerConfig{Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg, err := config.Load("../../config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	kcfg := cfg.Kafka
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
	if len(lines) != 3 || !strings.Contains(lines[1], "promoted") || !strings.Contains(lines[2], "train-rank") {
		t.Fatalf("runs listing:\n%s", stdout.String())
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		name                 string
		from, offsets, until string
		want                 feedback.Range
		err                  string
	}{
		{"empty", "", "", "", feedback.Range{}, ""},
		{"times", "2026-11-01T00:00:00Z", "", "2026-11-02T00:00:00Z",
			feedback.Range{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}, ""},
		{"offsets", "", "0:10, 2:5", "", feedback.Range{FromOffsets: map[int32]int64{0: 10, 2: 5}}, ""},
		{"bad time", "yesterday", "", "", feedback.Range{}, "--from"},
		{"bad offsets", "", "0=10", "", feedback.Range{}, `--from-offsets: "0=10" is not partition:offset`},
		{"negative offset", "", "0:-1", "", feedback.Range{}, "--from-offsets"},
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
