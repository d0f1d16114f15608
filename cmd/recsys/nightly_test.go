package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/offline/ranktrain"
	"github.com/recsys-dev/recsys/world"
)

// TestNightly is issue 16's third must-show: the pipeline refuses a catalog
// with half its rows missing (exit 65, nothing published), keeps the live
// ranker when the new one is worse and still publishes, and publishes when
// every gate passes; each decision is in the run history.
func TestNightly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bundles; -short skips it")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	writeWorld(t, dir, world.Config{Items: 1500, Users: 20, Seed: 6})
	cfg.Build.Ranker = filepath.Join(dir, "models", "ranker.onnx")
	live := buildBundle(t, cfg)
	cfgPath := writeConfig(t, cfg, filepath.Join(dir, "config.yaml"))
	runs := filepath.Join(dir, "runs")
	nightly := func(extra ...string) (string, error) {
		var out bytes.Buffer
		err := dispatch(context.Background(), append([]string{"nightly", "--config", cfgPath, "--runs", runs}, extra...), &out, io.Discard)
		return out.String(), err
	}
	current := func() string {
		v, err := bundle.Current(cfg.Bundles.Dir)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// 1. Half the rows missing: refused before anything is built.
	items, err := catalog.ReadFile(cfg.Build.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, "half.jsonl")
	if err := bundle.WriteItems(half, items[:len(items)/2]); err != nil {
		t.Fatal(err)
	}
	out, err := nightly("--catalog", half)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitDataRefused || !strings.Contains(err.Error(), "750 rows against the live bundle's 1500 (50% change") {
		t.Fatalf("half catalog: %v\n%s", err, out)
	}
	if current() != live {
		t.Fatal("a refused run changed CURRENT")
	}

	// 2. A new ranker worse than the live one: the live ranker stays, the
	// bundle is still built and published. The judgments grade the live
	// ranker's own top results, so it is perfect on them; a one-split
	// model cannot match it.
	judgments := liveJudgments(t, cfg, filepath.Join(cfg.Bundles.Dir, live), filepath.Join(dir, "judgments.tsv"))
	out, err = nightly("--judgments", judgments, "--train-flags", "--trees 1 --leaves 2 --min-test-queries 1")
	if err != nil {
		t.Fatalf("nightly with a worse ranker: %v\n%s", err, out)
	}
	second := current()
	m, err := bundle.Open(filepath.Join(cfg.Bundles.Dir, second))
	if err != nil {
		t.Fatal(err)
	}
	if second == live || m.Ranker.Kind != "linear" || !strings.Contains(out, "kept the live ranker") || m.Rules == nil ||
		!strings.Contains(out, "rules "+m.Rules.Version) {
		t.Fatalf("after a worse ranker: CURRENT %s (was %s), ranker %s\n%s", second, live, m.Ranker.Kind, out)
	}
	if _, err := os.Stat(cfg.Build.Ranker); err == nil {
		t.Fatal("the worse ranker was promoted into build.ranker")
	}

	// 3. Every gate passes, golden queries included: published.
	golden := filepath.Join(dir, "golden.jsonl")
	g, _ := json.Marshal(goldenQuery{Query: items[3].Title, Expect: []string{items[3].ID}})
	if err := os.WriteFile(golden, append(g, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = nightly("--golden", golden)
	if err != nil || current() == second || !strings.Contains(out, "smoke ...\n    ok: 1 golden queries answered") {
		t.Fatalf("all gates pass: %v, CURRENT %s\n%s", err, current(), out)
	}
	// A golden query the bundle cannot answer stops the publish.
	g, _ = json.Marshal(goldenQuery{Query: items[3].Title, Expect: []string{"no-such-item"}})
	os.WriteFile(golden, append(g, '\n'), 0o644)
	third := current()
	if _, err := nightly("--golden", golden); !errors.As(err, &ee) || ee.code != exitSmokeFailed || current() != third {
		t.Fatalf("failing golden query: %v, CURRENT %s (want %s)", err, current(), third)
	}

	// The run history holds every decision.
	recs, err := ranktrain.ReadRecords(runs)
	if err != nil {
		t.Fatal(err)
	}
	var decisions []string
	for _, r := range recs {
		decisions = append(decisions, r.Kind+":"+r.Decision)
	}
	// A nightly run starts before the training run it holds.
	want := "nightly:refused nightly:published train-rank-judgments:rejected nightly:published nightly:refused"
	if strings.Join(decisions, " ") != want {
		t.Fatalf("run history %v, want %s", decisions, want)
	}
	var listing bytes.Buffer
	if err := dispatch(context.Background(), []string{"runs", "--config", cfgPath, "--runs", runs}, &listing, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Logf("recsys runs:\n%s", listing.String())
}

// writeConfig writes cfg as a configuration file.
func writeConfig(t *testing.T, cfg *config.Config, path string) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path, nil); err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	return path
}

// liveJudgments grades the live bundle's own top three results for a few
// hundred title words (3, 2, 1), in the TSV train rank --judgments reads.
func liveJudgments(t *testing.T, cfg *config.Config, dir, path string) string {
	t.Helper()
	e, err := bundleEngine(context.Background(), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	items, err := catalog.ReadFile(filepath.Join(dir, bundle.ItemsFile))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	seen := map[string]bool{}
	for i := 0; i < 300 && i < len(items); i++ {
		q := strings.Fields(items[i*3%len(items)].Title)[0]
		if seen[q] {
			continue
		}
		seen[q] = true
		res, err := e.Search(context.Background(), engine.SearchRequest{Query: q, K: 3})
		if err != nil {
			continue
		}
		for j, h := range res.Items {
			fmt.Fprintf(&b, "%s\t%s\t%d\n", q, h.ID, 3-j)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
