package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/internal/ort"
)

// TestEvalRecommend runs `eval recommend` on a small MovieLens-shaped
// folder with two tastes (users like the movies of one half): through the
// embedded broker, the build, ranktrain and the engine, both protocols
// print every row, and the collaborative sources find the held-out movies
// of the user's half far better than popularity does.
func TestEvalRecommend(t *testing.T) {
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	t.Setenv("RECSYS_ONNXRUNTIME_LIBRARY", lib)
	dir := t.TempDir()
	var movies, ratings strings.Builder
	movies.WriteString("movieId,title,genres\n")
	const n = 60
	for m := 1; m <= n; m++ {
		g := "Comedy"
		if m > n/2 {
			g = "Drama"
		}
		fmt.Fprintf(&movies, "%d,Movie %d (%d),%s\n", m, m, 1990+m%20, g)
	}
	ratings.WriteString("userId,movieId,rating,timestamp\n")
	rng := rand.New(rand.NewPCG(1, 2))
	for u := 1; u <= 150; u++ {
		half := (u % 2) * n / 2
		for k, p := range rng.Perm(n / 2)[:12] {
			fmt.Fprintf(&ratings, "%d,%d,%.1f,%d\n", u, half+p+1, 4+float64(rng.IntN(3))/2, 1_000_000_000+u*5000+k*100)
		}
		fmt.Fprintf(&ratings, "%d,%d,2.0,%d\n", u, n/2-half+rng.IntN(n/2)+1, 1_000_000_000+u*5000+4000)
	}
	for name, body := range map[string]string{"movies.csv": movies.String(), "ratings.csv": ratings.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	err = dispatch(context.Background(), []string{"eval", "recommend", "--config", "../../config.yaml", "--movielens", dir,
		"--keep", t.TempDir()}, &out, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	t.Logf("%s", text[strings.Index(text, "\nper-user protocol"):])
	ndcg := func(protocol, row string) float64 { t.Helper(); return evalRow(t, text, protocol, row) }
	for _, p := range []string{"per-user", "global"} {
		for _, row := range []string{"content", "cooc", "als", "popular", "fresh", "merged", "merged + ranker"} {
			ndcg(p, row)
		}
	}
	if c, a, pop := ndcg("per-user", "cooc"), ndcg("per-user", "als"), ndcg("per-user", "popular"); !(c > pop+0.1 && a > pop+0.1) {
		t.Fatalf("per-user NDCG@10: cooc %.4f, als %.4f, popular %.4f; want both collaborative sources well above popular", c, a, pop)
	}
}

// evalRow reads row's NDCG@10 from the protocol's table that `eval
// recommend` printed in text.
func evalRow(t *testing.T, text, protocol, row string) float64 {
	t.Helper()
	at := strings.Index(text, "\n"+protocol+" protocol")
	if at < 0 {
		t.Fatalf("no %s protocol in:\n%s", protocol, text)
	}
	for _, line := range strings.Split(text[at:], "\n") {
		if f := strings.Fields(line); len(f) >= 3 && strings.Join(f[:len(f)-2], " ") == row {
			v, err := strconv.ParseFloat(f[len(f)-2], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("%s protocol: no row %q", protocol, row)
	return 0
}

// TestEvalRecommend_MovieLens is issue 13's must-show 1 as `make test` runs
// it: `eval recommend` on ml-latest-small through the product path, and on
// the per-user split the merged and ranked list must reach NDCG@10 0.135,
// above the published item-item peer's 0.128 and above the best source
// alone. (It takes about 35 s; skipped under -race, which make test runs
// first.)
func TestEvalRecommend_MovieLens(t *testing.T) {
	if raceEnabled {
		t.Skip("skipping the MovieLens evaluation under -race; make test runs it without: go test -run MovieLens ./cmd/recsys/")
	}
	dir := sharedData(t, "movielens-ml-latest-small", "ratings.csv")
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	t.Setenv("RECSYS_ONNXRUNTIME_LIBRARY", lib)
	var out bytes.Buffer
	if err := dispatch(context.Background(), []string{"eval", "recommend", "--config", "../../config.yaml", "--movielens", dir}, &out, io.Discard); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	t.Logf("%s", text[strings.Index(text, "\nper-user protocol"):])
	ranked := evalRow(t, text, "per-user", "merged + ranker")
	best := 0.0
	for _, row := range []string{"content", "cooc", "als", "popular", "fresh"} {
		best = max(best, evalRow(t, text, "per-user", row))
	}
	t.Logf("per-user NDCG@10: merged + ranker %.4f, best single source %.4f", ranked, best)
	if ranked < 0.135 || ranked <= best {
		t.Errorf("per-user NDCG@10 merged + ranker %.4f, want at least 0.135 (the item-item peer scores 0.128) and above the best source alone (%.4f)", ranked, best)
	}
}
