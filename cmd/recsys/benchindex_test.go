package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestBenchIndex(t *testing.T) {
	var out bytes.Buffer
	args := []string{"index", "--n", "3000", "--dim", "16", "--queries", "50", "--exact-queries", "20",
		"--ef", "32,128", "--filters", "0.5,0.001", "--backends", "hnsw,coder-hnsw", "--dists", "clustered", "--csv", "-"}
	if err := dispatch(context.Background(), append([]string{"bench"}, args...), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	i := strings.Index(text, "dist,backend,")
	if i < 0 {
		t.Fatalf("no CSV in output:\n%s", text)
	}
	rows, err := csv.NewReader(strings.NewReader(text[i:])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// exact, hnsw at 2 ef, hnsw at 2 filters, coder-hnsw at 2 ef.
	if len(rows) != 1+1+2+2+2 {
		t.Fatalf("%d CSV rows, want 8:\n%s", len(rows), text)
	}
	col := map[string]int{}
	for j, name := range rows[0] {
		col[name] = j
	}
	for _, r := range rows[1:] {
		rec, err := strconv.ParseFloat(r[col["recall"]], 64)
		if err != nil || rec < 0 || rec > 1 {
			t.Fatalf("row %v: recall %q", r, r[col["recall"]])
		}
		if qps, err := strconv.ParseFloat(r[col["qps_1t"]], 64); err != nil || qps <= 0 {
			t.Fatalf("row %v: qps %q", r, r[col["qps_1t"]])
		}
		// The project's graph at ef=128 and every filtered row must find
		// nearly all true neighbours even at this size.
		if r[col["backend"]] == "hnsw" && (r[col["ef"]] == "128" || r[col["filter"]] != "-") {
			if rec < 0.95 {
				t.Errorf("row %v: recall %.3f < 0.95", r, rec)
			}
			if r[col["short_of_k"]] != "0" {
				t.Errorf("row %v: queries short of k", r)
			}
		}
	}
	if !strings.Contains(text, "recall@10") {
		t.Errorf("no table header in output:\n%s", text)
	}
}

// TestBenchIndex_Quantize: --quantize none,int8 adds int8 rows for hnsw
// (at each ef and each filter), with a quarter of the walk's bytes per
// vector, and leaves the other backends alone.
func TestBenchIndex_Quantize(t *testing.T) {
	var out bytes.Buffer
	args := []string{"bench", "index", "--n", "3000", "--dim", "32", "--queries", "50", "--exact-queries", "20",
		"--ef", "32,128", "--filters", "0.5", "--backends", "hnsw,coder-hnsw", "--quantize", "none,int8",
		"--dists", "clustered", "--csv", "-"}
	if err := dispatch(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	rows, err := csv.NewReader(strings.NewReader(text[strings.Index(text, "dist,backend,"):])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for j, name := range rows[0] {
		col[name] = j
	}
	count := map[string]int{}
	recall := map[string]float64{}
	for _, r := range rows[1:] {
		key := r[col["backend"]] + "/" + r[col["quantize"]]
		count[key]++
		wantB := "128"
		if r[col["quantize"]] == "int8" {
			wantB = "32"
		}
		if r[col["walk_B_per_vec"]] != wantB {
			t.Errorf("row %v: walk bytes per vector %s, want %s", r, r[col["walk_B_per_vec"]], wantB)
		}
		if r[col["ef"]] == "128" && r[col["filter"]] == "-" {
			recall[key], _ = strconv.ParseFloat(r[col["recall"]], 64)
		}
	}
	// exact; hnsw none and int8 at 2 ef and 1 filter each; coder-hnsw at 2 ef.
	want := map[string]int{"exact/none": 1, "hnsw/none": 3, "hnsw/int8": 3, "coder-hnsw/none": 2}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d %s rows, want %d:\n%s", count[k], k, n, text)
		}
	}
	if recall["hnsw/int8"] < 0.95 || recall["hnsw/int8"] < recall["hnsw/none"]-0.02 {
		t.Errorf("int8 recall@10 %.3f at ef 128, float32 %.3f", recall["hnsw/int8"], recall["hnsw/none"])
	}
}

func TestBenchIndex_BadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown target", []string{"bench", "graph"}},
		{"bad ef", []string{"bench", "index", "--ef", "x"}},
		{"bad filter", []string{"bench", "index", "--filters", "2"}},
		{"bad n", []string{"bench", "index", "--n", "0"}},
		{"bad m", []string{"bench", "index", "--m", "1"}},
		{"bad quantize", []string{"bench", "index", "--quantize", "pq"}},
		{"empty quantize", []string{"bench", "index", "--quantize", "none,"}},
		{"int8 without hnsw", []string{"bench", "index", "--quantize", "int8", "--backends", "coder-hnsw"}},
		{"bad rescore", []string{"bench", "index", "--quantize", "int8", "--rescore", "-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := dispatch(context.Background(), tt.args, io.Discard, io.Discard); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
