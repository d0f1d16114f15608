package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/recsys-dev/recsys/index"
)

const benchSynopsis = "bench index [--n 100000] [--dim 384] [--backends hnsw,coder-hnsw] [--quantize none,int8] [--ef 16,32,...] [--filters 0.5,0.05,0.001] [--csv FILE]"

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runTarget(ctx, "bench", benchSynopsis, []target{
		{"index", "recall, QPS, build and load time, memory of the index backends", runBenchIndex},
		{"lexical", "build time, size, query latency, memory and BEIR quality of a lexical engine (own or bleve)", runBenchLexical},
		{"serve", "drive a running server at a fixed rate (open loop): latency percentiles, degraded share, server CPU and allocations per request", runBenchServe},
	}, args, stdout, stderr)
}

// benchOpts are the flags of `recsys bench index`.
type benchOpts struct {
	n, dim, queries, k, exactQueries int
	dists, backends, quantize        []string
	efs                              []int
	filters                          []float64
	cfg                              index.Config
	csvPath                          string
}

// benchRow is one line of the table and the CSV.
type benchRow struct {
	dist, backend, quantize, ef, filter string
	recall, qps1, qpsAll, speedup       float64
	buildS, loadS, indexBPV, rssBPV     float64
	// walkBPV is the bytes per vector of what the graph walk scores: the
	// float32 vector, or its int8 codes.
	walkBPV    float64
	short      int
	strategies string
}

func runBenchIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench index", benchSynopsis, stdout)
	o := benchOpts{cfg: index.DefaultConfig()}
	fs.IntVar(&o.n, "n", 100_000, "indexed vectors per distribution")
	fs.IntVar(&o.dim, "dim", 384, "vector dimension")
	fs.IntVar(&o.queries, "queries", 1000, "queries (drawn from the same distribution, not indexed)")
	fs.IntVar(&o.exactQueries, "exact-queries", 200, "queries timed on the exact backend (it is slow at large n)")
	fs.IntVar(&o.k, "k", 10, "neighbours per query (recall@k)")
	fs.IntVar(&o.cfg.M, "m", o.cfg.M, "graph links per node (2*m on layer 0)")
	fs.IntVar(&o.cfg.EfConstruction, "ef-construction", o.cfg.EfConstruction, "build candidate list size")
	fs.IntVar(&o.cfg.EfSearch, "filter-ef", o.cfg.EfSearch, "ef_search for the filtered rows")
	fs.Float64Var(&o.cfg.ExactBelow, "exact-below", o.cfg.ExactBelow, "selectivity under which a filtered query scans exactly")
	dists := fs.String("dists", "lowrank,clustered", "distributions: lowrank, clustered")
	bks := fs.String("backends", "hnsw,coder-hnsw", "backends compared with exact")
	quant := fs.String("quantize", index.QuantizeNone, "hnsw walk quantisations to compare: none, int8 (int8 walks on codes and re-scores on float32)")
	fs.IntVar(&o.cfg.Rescore, "rescore", o.cfg.Rescore, "int8: candidates re-scored on float32, as a multiple of k (0: all ef)")
	efs := fs.String("ef", "32,64,96,112,128,192,256", "ef_search sweep")
	filters := fs.String("filters", "0.5,0.05,0.001", "filter pass rates for the filtered rows (hnsw only)")
	fs.StringVar(&o.csvPath, "csv", "", "also write the rows as CSV to this file (- for stdout)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.dists = strings.Split(*dists, ",")
	o.backends = strings.Split(*bks, ",")
	o.quantize = strings.Split(*quant, ",")
	for _, q := range o.quantize {
		c := o.cfg
		c.Quantize = q
		if err := c.Validate(); err != nil || q == "" {
			return fmt.Errorf("bench index: --quantize: bad value %q (want %q or %q)", q, index.QuantizeNone, index.QuantizeInt8)
		}
	}
	for _, s := range strings.Split(*efs, ",") {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			return fmt.Errorf("bench index: --ef: bad value %q", s)
		}
		o.efs = append(o.efs, v)
	}
	for _, s := range strings.Split(*filters, ",") {
		if s == "" {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 || v > 1 {
			return fmt.Errorf("bench index: --filters: bad pass rate %q", s)
		}
		o.filters = append(o.filters, v)
	}
	if len(benchVariants(o)) == 0 && slices.ContainsFunc(o.backends, func(b string) bool { return b != index.BackendExact }) {
		return fmt.Errorf("bench index: --quantize %s applies to backend %s only", *quant, index.BackendHNSW)
	}
	if o.n <= 0 || o.dim <= 0 || o.queries <= 0 || o.k <= 0 || o.exactQueries <= 0 {
		return errors.New("bench index: --n, --dim, --queries, --exact-queries and --k must be > 0")
	}
	if err := o.cfg.Validate(); err != nil {
		return fmt.Errorf("bench index: %w", err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench index: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench index: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "recsys-bench-index-")
	if err != nil {
		return fmt.Errorf("bench index: %w", err)
	}
	defer os.RemoveAll(dir)

	var rows []benchRow
	for _, dist := range o.dists {
		r, err := benchDist(ctx, o, dist, dir, stderr)
		if err != nil {
			return fmt.Errorf("bench index: %s: %w", dist, err)
		}
		rows = append(rows, r...)
	}
	fmt.Fprintf(stdout, "n=%d dim=%d queries=%d k=%d m=%d ef_construction=%d cores=%d\n",
		o.n, o.dim, o.queries, o.k, o.cfg.M, o.cfg.EfConstruction, runtime.GOMAXPROCS(0))
	writeBenchTable(stdout, rows, o.k)
	fmt.Fprintf(stdout, "peak RSS %.2f GiB\n", float64(procStatus("VmHWM:"))/(1<<30))
	switch o.csvPath {
	case "":
	case "-":
		return writeBenchCSV(stdout, rows)
	default:
		f, err := os.Create(o.csvPath)
		if err != nil {
			return fmt.Errorf("bench index: %w", err)
		}
		if err := writeBenchCSV(f, rows); err != nil {
			f.Close()
			return fmt.Errorf("bench index: %w", err)
		}
		return f.Close()
	}
	return nil
}

// passFilter passes about rate of the ids, scattered by a hash so the
// filter is uncorrelated with the data.
func passFilter(rate float64) index.Filter {
	cut := uint32(rate * float64(1<<32-1))
	return func(id int32) bool {
		x := uint32(id)*2654435761 + 0x9e3779b9
		x ^= x >> 16
		x *= 0x85ebca6b
		x ^= x >> 13
		return x <= cut
	}
}

func benchDist(ctx context.Context, o benchOpts, dist, dir string, log io.Writer) ([]benchRow, error) {
	fmt.Fprintf(log, "%s: generating %d x %d\n", dist, o.n, o.dim)
	vecs, err := index.GenVectors(dist, o.n, o.dim, 42, 0)
	if err != nil {
		return nil, err
	}
	qs, _ := index.GenVectors(dist, o.queries, o.dim, 42, 1)
	queries := make([][]float32, o.queries)
	for i := range queries {
		queries[i] = qs[i*o.dim : (i+1)*o.dim]
	}
	ex, err := index.NewExact(o.dim, vecs)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "%s: exact ground truth\n", dist)
	truth := answers(ex, queries, o.k, nil)
	filterTruth := make([][][]index.Hit, len(o.filters))
	for i, rate := range o.filters {
		filterTruth[i] = answers(ex, queries, o.k, passFilter(rate))
	}
	exactRow := benchRow{dist: dist, backend: index.BackendExact, quantize: index.QuantizeNone, ef: "-", filter: "-", recall: 1, speedup: 1,
		walkBPV: 4 * float64(o.dim)}
	exactRow.qps1 = qps(ex, queries[:min(len(queries), o.exactQueries)], o.k, nil, 1)
	exactRow.qpsAll = qps(ex, queries[:min(len(queries), o.exactQueries)], o.k, nil, runtime.GOMAXPROCS(0))
	exactRow.indexBPV = 4 * float64(o.dim)
	exactRow.loadS, _, err = saveLoad(ex, dir)
	if err != nil {
		return nil, err
	}
	exactRow.rssBPV = float64(rss()) / float64(o.n)
	rows := []benchRow{exactRow}

	for _, cfg := range benchVariants(o) {
		backend := cfg.Backend
		label := backend
		if cfg.Quantize != index.QuantizeNone {
			label += " " + cfg.Quantize
		}
		fmt.Fprintf(log, "%s: building %s\n", dist, label)
		runtime.GC()
		debug.FreeOSMemory()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		ix, err := index.Build(ctx, cfg, o.dim, vecs)
		if err != nil {
			return nil, err
		}
		buildS := time.Since(start).Seconds()
		runtime.GC()
		debug.FreeOSMemory()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		// The vectors are shared with the generator, so the heap growth is
		// the graph; the index's own size adds them back.
		indexBPV := (float64(after.HeapAlloc)-float64(before.HeapAlloc))/float64(o.n) + 4*float64(o.dim)
		walkBPV := 4 * float64(o.dim)
		if cfg.Quantize == index.QuantizeInt8 {
			walkBPV = float64(o.dim) + 4*float64(o.dim)/float64(o.n) // codes and the scales
		}
		rssBPV := float64(rss()) / float64(o.n)
		loadS, _, err := saveLoad(ix, dir)
		if err != nil {
			return nil, err
		}
		tuner, _ := ix.(interface{ SetEfSearch(int) })
		for _, ef := range o.efs {
			if tuner == nil && ef != o.efs[0] {
				break
			}
			if tuner != nil {
				tuner.SetEfSearch(ef)
			}
			fmt.Fprintf(log, "%s: %s ef=%d\n", dist, label, ef)
			got := answers(ix, queries, o.k, nil)
			r := benchRow{dist: dist, backend: backend, quantize: cfg.Quantize, ef: strconv.Itoa(ef), filter: "-",
				recall: recall(got, truth), buildS: buildS, loadS: loadS, indexBPV: indexBPV, rssBPV: rssBPV, walkBPV: walkBPV}
			r.qps1 = qps(ix, queries, o.k, nil, 1)
			r.qpsAll = qps(ix, queries, o.k, nil, runtime.GOMAXPROCS(0))
			r.speedup = r.qps1 / exactRow.qps1
			rows = append(rows, r)
		}
		if h, ok := ix.(*index.HNSW); ok {
			h.SetEfSearch(o.cfg.EfSearch)
			for i, rate := range o.filters {
				fmt.Fprintf(log, "%s: %s filter %g\n", dist, label, rate)
				f := passFilter(rate)
				before := h.Counters()
				got := answers(h, queries, o.k, f)
				c := h.Counters()
				r := benchRow{dist: dist, backend: backend, quantize: cfg.Quantize, ef: strconv.Itoa(o.cfg.EfSearch), filter: strconv.FormatFloat(rate, 'g', -1, 64),
					recall: recall(got, filterTruth[i]), buildS: buildS, loadS: loadS, indexBPV: indexBPV, rssBPV: rssBPV, walkBPV: walkBPV}
				r.strategies = fmt.Sprintf("graph=%d exact=%d graph+exact=%d", c.FilteredGraph-before.FilteredGraph,
					c.Exact-before.Exact, c.GraphThenExact-before.GraphThenExact)
				for q := range got {
					if len(got[q]) < o.k && len(filterTruth[i][q]) >= o.k {
						r.short++
					}
				}
				r.qps1 = qps(h, queries, o.k, f, 1)
				r.qpsAll = qps(h, queries, o.k, f, runtime.GOMAXPROCS(0))
				r.speedup = r.qps1 / exactRow.qps1
				rows = append(rows, r)
			}
		}
	}
	return rows, nil
}

// benchVariants are the configurations built per distribution: every
// backend but exact (the reference, measured apart), hnsw once per
// quantisation (the others have none).
func benchVariants(o benchOpts) []index.Config {
	var out []index.Config
	for _, backend := range o.backends {
		if backend == index.BackendExact {
			continue
		}
		for _, q := range o.quantize {
			if backend != index.BackendHNSW && q != index.QuantizeNone {
				continue
			}
			cfg := o.cfg
			cfg.Backend, cfg.Quantize = backend, q
			out = append(out, cfg)
		}
	}
	return out
}

// searcher is what the bench measures.
type searcher interface {
	Search(q []float32, k int, filter index.Filter) []index.Hit
}

// answers searches every query, spread over all cores.
func answers(ix searcher, queries [][]float32, k int, f index.Filter) [][]index.Hit {
	out := make([][]index.Hit, len(queries))
	parallel(len(queries), runtime.GOMAXPROCS(0), func(i int) { out[i] = ix.Search(queries[i], k, f) })
	return out
}

// qpsReps is how many times each throughput is measured; the best run is
// kept, since on a shared machine other processes only ever slow a run.
const qpsReps = 3

// qps times the queries run by workers goroutines.
func qps(ix searcher, queries [][]float32, k int, f index.Filter, workers int) float64 {
	best := 0.0
	for range qpsReps {
		start := time.Now()
		parallel(len(queries), workers, func(i int) { ix.Search(queries[i], k, f) })
		best = max(best, float64(len(queries))/time.Since(start).Seconds())
	}
	return best
}

func parallel(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// recall is the fraction of the true neighbours found, over all queries.
func recall(got, want [][]index.Hit) float64 {
	found, total := 0, 0
	for q := range want {
		ids := make(map[int32]bool, len(want[q]))
		for _, h := range want[q] {
			ids[h.ID] = true
		}
		for _, h := range got[q] {
			if ids[h.ID] {
				found++
			}
		}
		total += len(want[q])
	}
	if total == 0 {
		return 1
	}
	return float64(found) / float64(total)
}

// saveLoad writes the index's snapshot and times loading it back.
func saveLoad(ix index.Index, dir string) (float64, int64, error) {
	path := filepath.Join(dir, "index.snap")
	if err := ix.WriteFile(path); err != nil {
		return 0, 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	got, err := index.Load(path)
	if err != nil {
		return 0, 0, err
	}
	secs := time.Since(start).Seconds()
	if c, ok := got.(io.Closer); ok {
		// The loaded index maps the file; release it before removing it.
		defer c.Close()
	}
	if got.Len() != ix.Len() {
		return 0, 0, fmt.Errorf("loaded %d vectors, wrote %d", got.Len(), ix.Len())
	}
	return secs, st.Size(), os.Remove(path)
}

// rss is the process's resident set in bytes (0 where /proc is absent).
func rss() int64 { return procStatus("VmRSS:") }

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

var benchHeader = []string{"dist", "backend", "quantize", "ef", "filter", "recall", "qps_1t", "qps_all", "x_exact_1t",
	"build_s", "load_s", "walk_B_per_vec", "index_B_per_vec", "rss_B_per_vec", "short_of_k", "strategies"}

func (r benchRow) cells() []string {
	return []string{r.dist, r.backend, r.quantize, r.ef, r.filter, fmt.Sprintf("%.4f", r.recall),
		fmt.Sprintf("%.0f", r.qps1), fmt.Sprintf("%.0f", r.qpsAll), fmt.Sprintf("%.1f", r.speedup),
		fmt.Sprintf("%.1f", r.buildS), fmt.Sprintf("%.3f", r.loadS), fmt.Sprintf("%.0f", r.walkBPV),
		fmt.Sprintf("%.0f", r.indexBPV), fmt.Sprintf("%.0f", r.rssBPV), strconv.Itoa(r.short), r.strategies}
}

func writeBenchTable(w io.Writer, rows []benchRow, k int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	h := append([]string(nil), benchHeader...)
	h[5] = fmt.Sprintf("recall@%d", k)
	fmt.Fprintln(tw, strings.Join(h, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t")+"\t")
	}
	tw.Flush()
}

func writeBenchCSV(w io.Writer, rows []benchRow) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(benchHeader); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(r.cells()); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
