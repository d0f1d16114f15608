package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/world"
)

// TestTrainEmbed trains on a generated catalog's own pairs and checks the
// written model is one the encoder (and so `build` and `serve`) accepts.
func TestTrainEmbed(t *testing.T) {
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	dir := t.TempDir()
	if err := world.Write(filepath.Join(dir, "world"), world.Config{Items: 1000, Users: 10, Seed: 3}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model.onnx")
	var stdout bytes.Buffer
	err = dispatch(context.Background(), []string{"train", "embed", "--config", "../../config.yaml",
		"--catalog", filepath.Join(dir, "world", "catalog.jsonl"), "--out", out, "--epochs", "2"}, &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"catalog: 1000 title/description pairs", "training on 1000 pairs", "epoch 2: loss", "wrote " + out} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
	enc, err := embed.Open(embed.EncoderConfig{ModelPath: out}, nil)
	if err != nil {
		t.Fatalf("trained model refused: %v", err)
	}
	defer enc.Close()
	if enc.Dim() != 128 {
		t.Errorf("dim = %d, want the configured 128", enc.Dim())
	}

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"train", "embed", "--config", "../../config.yaml"},
			{"train", "embed", "--config", "../../config.yaml", "--out", out, "--batch", "1"},
			{"train", "nope"},
			{"train", "embed", "--config", "../../config.yaml", "--out", out, "--pairs", "catalog,bogus"},
			{"train", "embed", "--config", "../../config.yaml", "--out", out, "--pairs", "search"},
			{"train", "embed", "--config", "../../config.yaml", "--out", out, "--events", out},
			{"train", "embed", "--config", "../../config.yaml", "--beir", dir, "--pairs", "catalog,search", "--events", out},
		} {
			if err := dispatch(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Errorf("%v: accepted", args)
			}
		}
	})
}

// TestTrainEmbed_BEIR writes a model from a BEIR folder's corpus pairs
// and the judged queries outside one fold, and the model serves in a
// bundle through eval search.
func TestTrainEmbed_BEIR(t *testing.T) {
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	t.Setenv("RECSYS_ONNXRUNTIME_LIBRARY", lib)
	beirDir := writeTitleBEIR(t, 20)
	qrels := filepath.Join(beirDir, "qrels", "train.tsv")
	out := filepath.Join(t.TempDir(), "beir.onnx")
	var stdout bytes.Buffer
	err = dispatch(context.Background(), []string{"train", "embed", "--config", "../../config.yaml", "--beir", beirDir,
		"--qrels", qrels, "--fold", "1", "--folds", "4", "--out", out, "--epochs", "1", "--batch", "8"}, &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pairs of 15 judged queries", "fold 1 of 4 held out", "epoch 1: loss", "wrote " + out} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	err = dispatch(context.Background(), []string{"eval", "search", "--config", "../../config.yaml", "--beir", beirDir,
		"--qrels", qrels, "--fold", "1", "--folds", "4", "--retrieval", "dense", "--model", out}, &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "embedding hashed-ngram-bag-trained") || !strings.Contains(stdout.String(), "queries     5\n") {
		t.Errorf("eval with the trained model:\n%s", stdout.String())
	}
	if err := dispatch(context.Background(), []string{"train", "embed", "--config", "../../config.yaml", "--beir", beirDir,
		"--fold", "1"}, io.Discard, io.Discard); err == nil {
		t.Error("--fold without --out accepted")
	}
}

// feedbackEvents makes a small log over the first items of a catalog: user
// u<i> searches, clicks item i from the results and, a minute later,
// item i+1 (a co-engagement); every fourth user also clicks a
// recommendation, which gives no search pair.
func feedbackEvents(items []catalog.Item, users int, now time.Time) []feedback.Event {
	var evs []feedback.Event
	for i := 0; i < users; i++ {
		user, req := fmt.Sprintf("u%d", i), fmt.Sprintf("r%d", i)
		query := strings.Join(strings.Fields(items[i].Title)[:1], " ")
		evs = append(evs,
			feedback.Event{Type: feedback.TypeImpression, SchemaVersion: 1, Timestamp: now, UserID: user, RequestID: req,
				Surface: feedback.SurfaceSearch, Query: query, Items: []feedback.ImpressionItem{{ItemID: items[i].ID, Position: 0}}},
			feedback.Event{Type: feedback.TypeClick, SchemaVersion: 1, Timestamp: now.Add(time.Second), UserID: user,
				RequestID: req, ItemID: items[i].ID},
			feedback.Event{Type: feedback.TypeClick, SchemaVersion: 1, Timestamp: now.Add(time.Minute), UserID: user,
				ItemID: items[i+1].ID},
		)
		if i%4 == 0 {
			evs = append(evs, feedback.Event{Type: feedback.TypeClick, SchemaVersion: 1, Timestamp: now.Add(2 * time.Hour),
				UserID: user, ItemID: items[i+2].ID, Surface: feedback.SurfaceRecommend})
		}
	}
	for i := range evs {
		evs[i].EnsureID()
	}
	return evs
}

// TestTrainEmbed_FeedbackPairs trains on catalog, search and co-engagement
// pairs read from an events file and from the events topic, and checks each
// source contributed what the log holds.
func TestTrainEmbed_FeedbackPairs(t *testing.T) {
	if _, err := ort.FindLibrary(); err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	dir := t.TempDir()
	if err := world.Write(filepath.Join(dir, "world"), world.Config{Items: 1000, Users: 10, Seed: 3}, nil); err != nil {
		t.Fatal(err)
	}
	catPath := filepath.Join(dir, "world", "catalog.jsonl")
	items, err := catalog.ReadFile(catPath)
	if err != nil {
		t.Fatal(err)
	}
	const users = 40
	evs := feedbackEvents(items, users, time.Now().UTC().Truncate(time.Millisecond))
	// 40 searches with one click each; 40 co-engagements; 10 late
	// recommendation clicks, two hours after the rest: no pair.
	wantLines := []string{
		fmt.Sprintf("%d engagements", 2*users+users/4),
		fmt.Sprintf("search: %d query/item pairs (%d engagements without a search query", users, users+users/4),
		fmt.Sprintf("coengagement: %d item/item pairs", users),
		fmt.Sprintf("training on %d pairs", 1000+2*users),
	}
	run := func(t *testing.T, extra ...string) string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "model.onnx")
		args := append([]string{"train", "embed", "--config", "../../config.yaml", "--catalog", catPath, "--out", out,
			"--epochs", "1", "--pairs", "catalog,search,coengagement"}, extra...)
		var stdout bytes.Buffer
		if err := dispatch(context.Background(), args, &stdout, io.Discard); err != nil {
			t.Fatalf("%v\n%s", err, stdout.String())
		}
		for _, want := range append(wantLines, "wrote "+out) {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, stdout.String())
			}
		}
		return stdout.String()
	}

	t.Run("file", func(t *testing.T) {
		var buf bytes.Buffer
		for _, ev := range evs {
			b, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(append(b, '\n'))
		}
		buf.WriteString("{\"not\": \"an event\"}\n")
		path := filepath.Join(t.TempDir(), "events.jsonl")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		got := run(t, "--events", path)
		if !strings.Contains(got, fmt.Sprintf("%d events, 1 invalid skipped", len(evs))) {
			t.Errorf("output does not count the invalid line:\n%s", got)
		}
	})

	t.Run("topic", func(t *testing.T) {
		b, err := eventlog.StartBroker(eventlog.BrokerConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		kcfg := eventlog.Config{Brokers: b.Addrs(), Topic: "train-events", Partitions: 3}
		p, err := eventlog.NewProducer(kcfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.EnsureTopic(ctx); err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if err := p.Publish(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		// A redelivered event (a client retry after a lost answer) must
		// not count twice.
		if err := p.Publish(ctx, evs[1]); err != nil {
			t.Fatal(err)
		}
		p.Close()
		t.Setenv("RECSYS_KAFKA_BROKERS", strings.Join(b.Addrs(), ","))
		t.Setenv("RECSYS_KAFKA_TOPIC", kcfg.Topic)
		got := run(t, "--events-topic")
		if !strings.Contains(got, fmt.Sprintf("%d events (1 duplicates dropped)", len(evs)+1)) {
			t.Errorf("output does not show the duplicate dropped:\n%s", got)
		}
	})
}
