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
	// Every mode answers through a bundle built from the corpus and the
	// engine serve runs, except exact-dense, the scan kept for comparison.
	for _, mode := range []string{"hybrid", "lexical", "dense", "exact-dense"} {
		t.Run(mode, func(t *testing.T) {
			run := filepath.Join(t.TempDir(), "run.trec")
			var out bytes.Buffer
			err := dispatch(context.Background(), []string{"eval", "search", "--config", "../../config.yaml", "--beir", dir,
				"--retrieval", mode, "--run", run}, &out, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"retrieval   " + mode + "\n", "queries     4\n", "nDCG@10     1.0000\n", "Recall@10   1.0000\n",
				"Recall@100  1.0000\n", "MRR@10      1.0000\n"}
			if mode != "exact-dense" {
				want = append(want, "bundle      v", "latency     p50 ")
			}
			for _, w := range want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			b, err := os.ReadFile(run)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if f := strings.Fields(line); len(f) != 6 || f[1] != "Q0" || f[5] != "recsys-"+mode {
					t.Fatalf("run file line %q is not qid Q0 docid rank score tag", line)
				}
			}
			for _, id := range []string{"a", "b", "c", "d"} {
				if !strings.Contains(string(b), "q"+id+" Q0 d"+id+" 1 ") {
					t.Errorf("run file does not rank d%s first for q%s:\n%s", id, id, b)
				}
			}
		})
	}
	t.Run("one fold", func(t *testing.T) {
		var out bytes.Buffer
		err := dispatch(context.Background(), []string{"eval", "search", "--config", "../../config.yaml", "--beir", dir,
			"--retrieval", "lexical", "--fold", "2", "--folds", "2"}, &out, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "queries     2\n") || !strings.Contains(out.String(), "fold 2 of 2 held out") {
			t.Errorf("output:\n%s", out.String())
		}
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"eval", "search", "--config", "../../config.yaml"},
			{"eval", "search", "--config", "../../config.yaml", "--beir", dir, "--bert-model", "m.onnx"},
			{"eval", "search", "--config", "../../config.yaml", "--beir", dir, "--bert-model", "m.onnx", "--vocab", "v.txt", "--retrieval", "hybrid"},
			{"eval", "search", "--config", "../../config.yaml", "--beir", dir, "--retrieval", "bm25"},
			{"eval", "search", "--config", "../../config.yaml", "--beir", dir, "--fold", "3", "--folds", "2"},
			{"eval", "nope"},
		} {
			if err := dispatch(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Errorf("%v: accepted", args)
			}
		}
	})
}
