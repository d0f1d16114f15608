package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/internal/ort"
)

func TestEvalSearch(t *testing.T) {
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	t.Setenv("RECSYS_ONNXRUNTIME_LIBRARY", lib)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "qrels"), 0o755)
	texts := []string{"red apple fruit orchard", "blue ocean water waves", "green forest pine trees", "desert sand dunes heat"}
	var corpus, queries, qrels strings.Builder
	qrels.WriteString("query-id\tcorpus-id\tscore\n")
	for i, tx := range texts {
		id := string(rune('a' + i))
		corpus.WriteString(`{"_id": "d` + id + `", "title": "", "text": "` + tx + `", "metadata": {}}` + "\n")
		// Each query is its document's text, so any sane encoder ranks that
		// document first (cosine 1): every metric must be exactly 1.
		queries.WriteString(`{"_id": "q` + id + `", "text": "` + strings.ToUpper(tx) + `"}` + "\n")
		qrels.WriteString("q" + id + "\td" + id + "\t1\n")
	}
	for name, body := range map[string]string{"corpus.jsonl": corpus.String(), "queries.jsonl": queries.String(), "qrels/dev.tsv": qrels.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	err = dispatch(context.Background(), []string{"eval", "search", "--config", "../../config.yaml", "--beir", dir}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"queries     4\n", "nDCG@10     1.0000\n", "Recall@10   1.0000\n", "Recall@100  1.0000\n", "MRR@10      1.0000\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"eval", "search", "--config", "../../config.yaml"},
			{"eval", "search", "--config", "../../config.yaml", "--beir", dir, "--bert-model", "m.onnx"},
			{"eval", "nope"},
		} {
			if err := dispatch(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Errorf("%v: accepted", args)
			}
		}
	})
}
