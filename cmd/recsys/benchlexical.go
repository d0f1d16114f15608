package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/index/lexbleve"
	"github.com/recsys-dev/recsys/offline/beir"
	"github.com/recsys-dev/recsys/world"
)

const benchLexicalSynopsis = "bench lexical [--engine own|bleve] (--n 100000 | --beir DIR [--qrels FILE]) [--queries 1000] [--k 100] [--config FILE]"

// Lexical engines `recsys bench lexical` compares.
const (
	engineOwn   = "own"
	engineBleve = "bleve"
)

// lexEngine is one engine under test: a searcher over documents 0..n-1.
type lexEngine struct {
	search func(q string, k int) ([]int32, error)
	bytes  int64   // on-disk size
	loadS  float64 // time to open the written index (own: decode; bleve: reopen not measured)
	close  func()
}

// runBenchLexical measures one lexical engine per run (so the resident
// memory it reports is that engine's): build time, on-disk size, load
// time, single-threaded query latency and, on a BEIR folder, quality.
func runBenchLexical(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench lexical", benchLexicalSynopsis, stdout)
	path := configFlag(fs)
	engine := fs.String("engine", engineOwn, "own (the project's index, served) or bleve (github.com/blevesearch/bleve/v2, for comparison)")
	n := fs.Int("n", 100_000, "items of the synthetic world to index (ignored with --beir)")
	dir := fs.String("beir", "", "BEIR folder: index its corpus (title and text as one field) and report quality on its judged queries")
	qrels := fs.String("qrels", "", "qrels file for --beir (default as in eval search)")
	queries := fs.Int("queries", 1000, "timed queries on the synthetic world (drawn as its users type them)")
	k := fs.Int("k", 100, "results per query")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	if *engine != engineOwn && *engine != engineBleve {
		return fmt.Errorf("bench lexical: --engine: want %s or %s, got %q", engineOwn, engineBleve, *engine)
	}
	if *k < 1 || *queries < 1 {
		return errors.New("bench lexical: --k and --queries must be >= 1")
	}
	lc := cfg.Index.Lexical
	var (
		docs  int
		text  func(d, f int) string
		qs    []string
		ds    *beir.Dataset
		label string
	)
	if *dir != "" {
		if ds, err = beir.Load(ctx, *dir, *qrels); err != nil {
			return err
		}
		docs, label = len(ds.Corpus), *dir
		text = beirField(ds.Corpus)
		for _, q := range ds.Queries {
			qs = append(qs, q.Text)
		}
		// The BM25 baseline indexes title and text as one field.
		lc.Fields = index.FieldWeights{Title: 1, Description: 1}
	} else {
		items, err := worldItems(*n, stderr)
		if err != nil {
			return err
		}
		docs, label = len(items), fmt.Sprintf("synthetic world, %d items", len(items))
		text = func(d, f int) string { return index.ItemField(&items[d], f) }
		qs = worldQueries(*n, *queries)
	}
	tmp, err := os.MkdirTemp("", "recsys-bench-lexical-")
	if err != nil {
		return fmt.Errorf("bench lexical: %w", err)
	}
	defer os.RemoveAll(tmp)

	debug.FreeOSMemory()
	var heapBefore runtime.MemStats
	runtime.ReadMemStats(&heapBefore)
	rssBefore := rss()
	fmt.Fprintf(stderr, "building %s over %d documents\n", *engine, docs)
	start := time.Now()
	var e *lexEngine
	if *engine == engineOwn {
		e, err = buildOwn(ctx, lc, docs, text, tmp)
	} else {
		e, err = buildBleve(ctx, lc, docs, text, tmp, ds != nil)
	}
	if err != nil {
		return fmt.Errorf("bench lexical: %w", err)
	}
	defer e.close()
	buildS := time.Since(start).Seconds()

	runs := make(map[string][]string, len(qs))
	lat := make([]time.Duration, 0, len(qs))
	for i, q := range qs {
		t0 := time.Now()
		hits, err := e.search(q, *k)
		lat = append(lat, time.Since(t0))
		if err != nil {
			return fmt.Errorf("bench lexical: query %q: %w", q, err)
		}
		if ds != nil {
			ids := make([]string, len(hits))
			for j, h := range hits {
				ids[j] = ds.Corpus[h].ID
			}
			runs[ds.Queries[i].ID] = ids
		}
	}
	debug.FreeOSMemory()
	var heapAfter runtime.MemStats
	runtime.ReadMemStats(&heapAfter)
	rssAfter := rss()
	runtime.KeepAlive(text) // the documents stay resident in both readings
	slices.Sort(lat)
	fmt.Fprintf(stdout, "engine       %s\ndata         %s\nanalysis     stopwords %s, stemmer %s, k1 %g, b %g\n",
		*engine, label, lc.Stopwords, lc.Stemmer, lc.K1, lc.B)
	fmt.Fprintf(stdout, "build        %.2f s\nsize         %.1f MB on disk\n", buildS, float64(e.bytes)/1e6)
	if e.loadS > 0 {
		fmt.Fprintf(stdout, "load         %.3f s\n", e.loadS)
	}
	fmt.Fprintf(stdout, "queries      %d, k %d, one thread\np50          %.0f us\np99          %.0f us\n",
		len(lat), *k, micros(percentile(lat, 0.50)), micros(percentile(lat, 0.99)))
	fmt.Fprintf(stdout, "memory       +%.0f MB resident, +%.0f MB Go heap over the documents alone; peak resident %.0f MB\n",
		float64(rssAfter-rssBefore)/1e6, (float64(heapAfter.HeapInuse)-float64(heapBefore.HeapInuse))/1e6,
		float64(procStatus("VmHWM:"))/1e6)
	if ds != nil {
		beir.Evaluate(runs, ds.Qrels).Print(stdout)
	}
	return nil
}

func buildOwn(ctx context.Context, lc index.LexicalConfig, n int, text func(d, f int) string, dir string) (*lexEngine, error) {
	x, err := index.BuildLexical(ctx, lc, n, text)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "lexical.snap")
	if err := x.WriteFile(path); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// Serve from the loaded copy, as a bundle does; drop the built one.
	x = nil
	runtime.GC()
	start := time.Now()
	if x, err = index.LoadLexical(path); err != nil {
		return nil, err
	}
	return &lexEngine{bytes: st.Size(), loadS: time.Since(start).Seconds(), close: func() {},
		search: func(q string, k int) ([]int32, error) {
			r := x.Search(x.Parse(q), k, nil)
			defer r.Release()
			out := make([]int32, len(r.Hits))
			for i, h := range r.Hits {
				out[i] = h.ID
			}
			return out, nil
		}}, nil
}

func buildBleve(ctx context.Context, lc index.LexicalConfig, n int, text func(d, f int) string, dir string, oneField bool) (*lexEngine, error) {
	x, err := lexbleve.Build(ctx, filepath.Join(dir, "bleve"), lc, n, text, oneField)
	if err != nil {
		return nil, err
	}
	size, err := x.DiskBytes()
	if err != nil {
		x.Close()
		return nil, err
	}
	return &lexEngine{bytes: size, close: func() { x.Close() },
		search: func(q string, k int) ([]int32, error) { return x.Search(ctx, q, k) }}, nil
}

// beirField maps a BEIR corpus onto the lexical fields: title as title,
// text as description, as `eval search` builds its bundle.
func beirField(docs []beir.Doc) func(d, f int) string {
	return func(d, f int) string {
		switch f {
		case index.FieldTitle:
			return docs[d].Title
		case index.FieldDescription:
			return docs[d].Text
		}
		return ""
	}
}

func worldItems(n int, progress io.Writer) ([]catalog.Item, error) {
	w, err := world.New(world.Config{Items: n, Users: 1000, Seed: 1})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "generating %d items\n", n)
	items := make([]catalog.Item, n)
	for i := range items {
		items[i] = w.Item(i)
	}
	return items, nil
}

// worldQueries are queries the world's users would type, seeded.
func worldQueries(items, n int) []string {
	w, _ := world.New(world.Config{Items: items, Users: 1000, Seed: 1})
	users := w.Users()
	rng := rand.New(rand.NewPCG(7, 7))
	out := make([]string, n)
	for i := range out {
		out[i] = w.Query(&users[rng.IntN(len(users))], rng)
	}
	return out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
