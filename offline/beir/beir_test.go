package beir

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestMetrics(t *testing.T) {
	tenMisses := []string{"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"}
	tests := []struct {
		name   string
		ranked []string
		grades map[string]int
		k      int
		ndcg   float64
		recall float64
		mrr    float64
	}{
		// DCG = 1/log2(3) + 1/log2(5); IDCG over 3 relevant = 1 + 1/log2(3) + 1/log2(4).
		{"binary, one relevant never retrieved", []string{"a", "b", "c", "d"}, map[string]int{"b": 1, "d": 1, "e": 1}, 10,
			0.49818925746641285, 2.0 / 3, 0.5},
		{"cut at k", []string{"a", "b", "c", "d"}, map[string]int{"b": 1, "d": 1, "e": 1}, 2,
			(1 / math.Log2(3)) / (1 + 1/math.Log2(3)), 1.0 / 3, 0.5},
		// Linear gain: DCG = 1 + 2/log2(3); ideal puts the grade 2 first.
		{"graded", []string{"a", "b"}, map[string]int{"a": 1, "b": 2}, 10, 0.8597186998521972, 1, 1},
		{"perfect", []string{"a", "b", "c"}, map[string]int{"a": 1, "b": 1}, 10, 1, 1, 1},
		{"relevant just past k", append(slices.Clone(tenMisses), "r"), map[string]int{"r": 1}, 10, 0, 0, 0},
		{"zero grade is not relevant", []string{"a"}, map[string]int{"a": 0}, 10, 0, 0, 0},
		{"empty ranking", nil, map[string]int{"a": 1}, 10, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NDCG(tt.ranked, tt.grades, tt.k); !near(got, tt.ndcg) {
				t.Errorf("NDCG = %v, want %v", got, tt.ndcg)
			}
			if got := Recall(tt.ranked, tt.grades, tt.k); !near(got, tt.recall) {
				t.Errorf("Recall = %v, want %v", got, tt.recall)
			}
			if got := MRR(tt.ranked, tt.grades, tt.k); !near(got, tt.mrr) {
				t.Errorf("MRR = %v, want %v", got, tt.mrr)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	qrels := Qrels{
		"q1":   {"a": 1},
		"q2":   {"b": 1, "c": 1},
		"q3":   {"d": 1}, // missing from the run: counts as all zeros
		"zero": {"a": 0}, // no relevant document: left out
	}
	run := map[string][]string{
		"q1": {"a"},
		"q2": {"x", "b"},
	}
	got := Evaluate(run, qrels)
	// q1: ndcg 1, r 1, mrr 1. q2: dcg 1/log2(3), idcg 1+1/log2(3); r 1/2; mrr 1/2.
	q2 := (1 / math.Log2(3)) / (1 + 1/math.Log2(3))
	want := Report{Queries: 3, NDCG10: (1 + q2) / 3, Recall10: 1.5 / 3, Recall100: 1.5 / 3, MRR10: 1.5 / 3}
	if got.Queries != want.Queries || !near(got.NDCG10, want.NDCG10) || !near(got.Recall10, want.Recall10) ||
		!near(got.Recall100, want.Recall100) || !near(got.MRR10, want.MRR10) {
		t.Errorf("Evaluate = %+v, want %+v", got, want)
	}
	var buf bytes.Buffer
	got.Print(&buf)
	for _, s := range []string{"nDCG@10", "Recall@10", "Recall@100", "MRR@10"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("Print output lacks %s:\n%s", s, buf.String())
		}
	}
}

func TestSearch(t *testing.T) {
	docs := [][]float32{{1, 0}, {0, 1}, {0.6, 0.8}, {1, 0}}
	queries := [][]float32{{1, 0}, {0, 1}, {-1, 0}}
	got, err := Search(context.Background(), docs, queries, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Ties (docs 0 and 3) go to the lower index.
	want := [][]int{{0, 3, 2}, {1, 2, 0}, {1, 2, 0}}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("query %d: got %v, want %v", i, got[i], want[i])
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Search(ctx, docs, queries, 3); err == nil {
		t.Error("cancelled search returned no error")
	}
}

func writeDataset(t *testing.T, corpus, queries, qrels string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "qrels"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"corpus.jsonl": corpus, "queries.jsonl": queries, "qrels/train.tsv": qrels} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	okCorpus  = `{"_id": "d1", "title": "Cats", "text": "cats purr", "metadata": {}}` + "\n" + `{"_id": "d2", "title": "", "text": "dogs bark", "metadata": {"x": [1]}}` + "\n"
	okQueries = `{"_id": "q1", "text": "purring", "metadata": {}}` + "\n" + `{"_id": "q2", "text": "unjudged"}` + "\n"
	okQrels   = "query-id\tcorpus-id\tscore\nq1\td1\t1\n"
)

func TestLoad(t *testing.T) {
	ds, err := Load(context.Background(), writeDataset(t, okCorpus, okQueries, okQrels), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Corpus) != 2 || ds.Corpus[0].Body() != "Cats cats purr" || ds.Corpus[1].Body() != "dogs bark" {
		t.Errorf("corpus = %+v", ds.Corpus)
	}
	if len(ds.Queries) != 1 || ds.Queries[0].ID != "q1" {
		t.Errorf("queries = %+v, want only the judged q1", ds.Queries)
	}
	if filepath.Base(ds.QrelsPath) != "train.tsv" {
		t.Errorf("qrels path = %s, want the folder's only file", ds.QrelsPath)
	}
}

func TestLoad_Errors(t *testing.T) {
	tests := []struct {
		name, corpus, queries, qrels, want string
	}{
		{"unknown document", okCorpus, okQueries, "q1\tnope\t1\n", "document nope, which is not in the corpus"},
		{"unknown query", okCorpus, okQueries, "q9\td1\t1\n", "query q9, which is not in queries.jsonl"},
		{"duplicate id", okCorpus + `{"_id": "d1", "text": "again"}` + "\n", okQueries, okQrels, `"d1" appears twice`},
		{"missing text", `{"_id": "d1", "title": "t"}` + "\n", okQueries, okQrels, "text: must be set"},
		{"unknown field", `{"_id": "d1", "text": "t", "body": "x"}` + "\n", okQueries, okQrels, "line 1"},
		{"bad score", okCorpus, okQueries, "q1\td1\thigh\n", `score "high"`},
		{"short qrels row", okCorpus, okQueries, "q1\td1\n", "want 3 tab-separated fields"},
		{"repeated judgement", okCorpus, okQueries, "q1\td1\t1\nq1\td1\t2\n", "judges document d1 twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(context.Background(), writeDataset(t, tt.corpus, tt.queries, tt.qrels), "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func FuzzReadQrels(f *testing.F) {
	f.Add([]byte(okQrels))
	f.Add([]byte("q\td\t-3\r\n\nq\te\t2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ReadQrels(bytes.NewReader(data))
		if err != nil {
			return
		}
		for qid, grades := range q {
			if qid == "" || len(grades) == 0 {
				t.Fatalf("accepted empty query or grades: %q %v", qid, grades)
			}
		}
	})
}

func FuzzReadCorpus(f *testing.F) {
	f.Add([]byte(okCorpus))
	f.Add([]byte(`{"_id": "1", "text": "", "metadata": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := ReadCorpus(bytes.NewReader(data))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, d := range docs {
			if d.ID == "" || seen[d.ID] {
				t.Fatalf("accepted empty or repeated id %q", d.ID)
			}
			seen[d.ID] = true
		}
	})
}
