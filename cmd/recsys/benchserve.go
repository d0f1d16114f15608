package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recsys-dev/recsys/world"
)

const benchServeSynopsis = "bench serve --url URL [--surface search|recommend|healthz] (--rate R --duration D | --find-max --p99 20ms | " +
	"--rate R --overload 2 [--baseline 10s --overload-for 30s --recover-for 30s] | --rate R --item-updates U [--admin-url URL --text-share S --pairs N] | " +
	"--surface recommend --rate R --compare-sources content [--pairs N]) " +
	"[--items N --users N --seed S] [--retrieval MODE] [--max-inflight N]"

// loadResult is one fixed-rate run as a client and the server saw it.
type loadResult struct {
	rate                      float64
	sent, ok, errors, late    int
	degraded                  int
	p50, p90, p99, max        time.Duration
	cpuPerReq, allocsPerReq   float64 // from the server's /metrics
	bytesPerReq, serverSecond float64
	// steal is the host's steal share of CPU time over the run (-1:
	// unknown); the client runs on the server's host in the usual setup.
	steal  float64
	stages map[string]float64 // mean seconds per "<surface>/<stage>"
	lat    []time.Duration    // answered requests' latencies, sorted
}

// runBenchServe drives a running server at a fixed rate, open loop: each
// request leaves at its scheduled time whatever the earlier ones are doing,
// and its latency counts from that time, so a stalled server is measured as
// the clients experience it (no coordinated omission).
func runBenchServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench serve", benchServeSynopsis, stdout)
	url := fs.String("url", "http://127.0.0.1:8080", "the server's base URL")
	surface := fs.String("surface", "search", "search, recommend, or healthz (GET /healthz: the host's cheapest request, a unit for CPU per request)")
	rate := fs.Float64("rate", 300, "requests per second")
	duration := fs.Duration("duration", 20*time.Second, "length of a run")
	findMax := fs.Bool("find-max", false, "step the rate up until p99 passes --p99 and report the highest rate under it")
	p99 := fs.Duration("p99", 20*time.Millisecond, "the p99 bound for --find-max")
	step := fs.Float64("step", 250, "rate increment for --find-max")
	items := fs.Int("items", 10000, "items of the world the server's bundle was built from (for ids)")
	users := fs.Int("users", 1000, "users of that world (for queries)")
	seed := fs.Int64("seed", 1, "seed of that world")
	mode := fs.String("retrieval", "", "retrieval mode for search requests (default: the server's)")
	inflight := fs.Int("max-inflight", 512, "most requests in flight; past it a request counts as an error")
	overload := fs.Float64("overload", 0, "run --rate for --baseline, then --overload times it for --overload-for, then --rate for --recover-for, "+
		"and report each second and how long p99, the degraded share and the consumer lag took to recover")
	baseline := fs.Duration("baseline", 10*time.Second, "the normal load before an overload")
	overloadFor := fs.Duration("overload-for", 30*time.Second, "how long the overload lasts")
	recoverFor := fs.Duration("recover-for", 30*time.Second, "the normal load after an overload")
	itemUpdates := fs.Float64("item-updates", 0, "item changes per second posted to --admin-url/admin/items during every other run (A B A B pairs): "+
		"reports each run and the p99 each pair's updates cost")
	adminURL := fs.String("admin-url", "http://127.0.0.1:8081", "the admin API, for --item-updates")
	textShare := fs.Float64("text-share", 0.01, "share of --item-updates that change a text (half new items, half re-described): embedded and indexed")
	pairs := fs.Int("pairs", 2, "A B pairs with --item-updates or --compare-sources")
	compare := fs.String("compare-sources", "", "with --surface recommend: A B pairs, A asking for only these recommendation sources "+
		"(comma-separated, e.g. content: today's single source), B for all of them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *surface != "search" && *surface != "recommend" && *surface != "healthz" {
		return fmt.Errorf("bench serve: --surface: want search, recommend or healthz, got %q", *surface)
	}
	if *rate <= 0 || *duration <= 0 || *step <= 0 {
		return errors.New("bench serve: --rate, --duration and --step must be > 0")
	}
	w, err := world.New(world.Config{Items: *items, Users: *users, Seed: *seed})
	if err != nil {
		return fmt.Errorf("bench serve: %w", err)
	}
	body := requestBodies(w, *surface, *mode, *items, *users, nil)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: *inflight, MaxIdleConnsPerHost: *inflight, IdleConnTimeout: time.Minute}}
	base := strings.TrimRight(*url, "/")
	target := base + "/v1/" + *surface
	if *surface == "healthz" {
		// The host's unit: the server's cheapest request (the issue's
		// CPU targets are multiples of it), so runs on different hosts
		// compare as ratios.
		body, target = nil, base+"/healthz"
	}
	run := func(r float64) (loadResult, error) {
		return loadRun(ctx, client, *url, target, body, r, *duration, *inflight)
	}
	fmt.Fprintf(stdout, "%8s %8s %6s %6s %8s %8s %8s %8s %9s %10s %10s %9s\n", "rate", "sent", "errors", "late",
		"p50_ms", "p90_ms", "p99_ms", "max_ms", "degraded", "cpu_ms/req", "allocs/req", "KB/req")
	print := func(res loadResult) {
		fmt.Fprintf(stdout, "%8.0f %8d %6d %6d %8.2f %8.2f %8.2f %8.2f %8.1f%% %10.3f %10.0f %9.1f\n", res.rate, res.sent, res.errors, res.late,
			ms(res.p50), ms(res.p90), ms(res.p99), ms(res.max), 100*float64(res.degraded)/float64(max(res.ok, 1)),
			1000*res.cpuPerReq, res.allocsPerReq, res.bytesPerReq/1024)
		var parts []string
		for _, st := range []string{"embed", "retrieve", "retrieve_lexical", "retrieve_dense", "features", "score", "rules"} {
			if v, ok := res.stages[*surface+"/"+st]; ok {
				parts = append(parts, fmt.Sprintf("%s %.3f", st, 1000*v))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(stdout, "%8s mean ms per stage: %s\n", "", strings.Join(parts, ", "))
		}
		if res.steal >= 0 {
			fmt.Fprintf(stdout, "%8s host steal %.1f%% of CPU time (a hypervisor's other guests: the figures above are noisier the higher it is)\n", "", 100*res.steal)
		}
	}
	if *compare != "" {
		if *surface != "recommend" {
			return errors.New("bench serve: --compare-sources needs --surface recommend")
		}
		bodyA := requestBodies(w, *surface, *mode, *items, *users, strings.Split(*compare, ","))
		runA := func(r float64) (loadResult, error) {
			return loadRun(ctx, client, *url, target, bodyA, r, *duration, *inflight)
		}
		return sourcePairs(stdout, *compare, *pairs, *rate, runA, run, print)
	}
	if *itemUpdates > 0 {
		return updatePairs(ctx, stdout, client, *url, *adminURL, *itemUpdates, *textShare, *items, *pairs, *rate, *duration, run, print)
	}
	if *overload > 0 {
		return overloadRun(ctx, stdout, client, *url, target, body, *rate, *overload, []time.Duration{*baseline, *overloadFor, *recoverFor}, *inflight)
	}
	if !*findMax {
		res, err := run(*rate)
		if err != nil {
			return err
		}
		print(res)
		return nil
	}
	best := 0.0
	for r := *rate; ; r += *step {
		res, err := run(r)
		if err != nil {
			return err
		}
		print(res)
		if res.p99 > *p99 || res.errors > 0 || ctx.Err() != nil {
			break
		}
		best = r
	}
	fmt.Fprintf(stdout, "highest rate with p99 under %v and no errors: %.0f requests/s\n", *p99, best)
	return nil
}

// sourcePairs runs A B pairs: A's recommendations from the listed sources
// only, B's from all of them; it prints each run and the pairs' p50 and
// p99 differences.
func sourcePairs(stdout io.Writer, only string, pairs int, rate float64, runA, runB func(float64) (loadResult, error), print func(loadResult)) error {
	if pairs < 1 {
		return errors.New("bench serve: --pairs must be >= 1")
	}
	var d50, d99 []float64
	var as, bs []loadResult
	for p := range pairs {
		fmt.Fprintf(stdout, "pair %d, A: %.0f recommendations/s from %s only\n", p+1, rate, only)
		a, err := runA(rate)
		if err != nil {
			return err
		}
		print(a)
		fmt.Fprintf(stdout, "pair %d, B: %.0f recommendations/s from all sources\n", p+1, rate)
		b, err := runB(rate)
		if err != nil {
			return err
		}
		print(b)
		d50, d99 = append(d50, ms(b.p50)-ms(a.p50)), append(d99, ms(b.p99)-ms(a.p99))
		as, bs = append(as, a), append(bs, b)
	}
	fmt.Fprintf(stdout, "all sources minus %s per pair (ms): p50 %s, p99 %s\n", only, fmtDeltas(d50), fmtDeltas(d99))
	fmt.Fprintf(stdout, "all sources minus %s: %s\n", only, pairSummary(as, bs))
	return nil
}

func fmtDeltas(ds []float64) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%+.2f", d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// requestBodies returns the i-th request body: queries as the world's users
// type them, or recommendations for a user with three recent items.
func requestBodies(w *world.World, surface, mode string, items, users int, sources []string) func(i int) []byte {
	const n = 4096
	rng := rand.New(rand.NewPCG(11, 13))
	bodies := make([][]byte, n)
	for i := range bodies {
		u := w.User(rng.IntN(users))
		var v map[string]any
		if surface == "search" {
			v = map[string]any{"query": w.Query(&u, rng), "k": 10, "user": map[string]any{"id": u.ID, "age": u.Age}}
			if mode != "" {
				v["retrieval"] = mode
			}
		} else {
			v = map[string]any{"user": map[string]any{"id": u.ID, "age": u.Age}, "k": 10,
				"recent_items": []string{world.ItemID(rng.IntN(items)), world.ItemID(rng.IntN(items)), world.ItemID(rng.IntN(items))}}
			if len(sources) > 0 {
				v["sources"] = sources
			}
		}
		bodies[i], _ = json.Marshal(v)
	}
	return func(i int) []byte { return bodies[i%n] }
}

// phase is a stretch of a load run at one rate.
type phase struct {
	rate float64
	d    time.Duration
}

// sample is one request as the client saw it.
type sample struct {
	at       time.Duration // scheduled send time since the run began
	took     time.Duration
	ok       bool
	degraded bool
}

// drive sends the phases' requests, each at its scheduled time whatever
// the earlier ones are doing (open loop), and returns them in send order.
// late counts requests the client itself sent over ten intervals late.
func drive(ctx context.Context, client *http.Client, target string, body func(int) []byte, phases []phase, inflight int) (out []sample, late int, err error) {
	var total int
	for _, p := range phases {
		total += int(p.rate * p.d.Seconds())
	}
	out = make([]sample, total)
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int64
	)
	start := time.Now()
	i, offset := 0, time.Duration(0)
	for _, p := range phases {
		interval := time.Duration(float64(time.Second) / p.rate)
		for j := range int(p.rate * p.d.Seconds()) {
			at := offset + time.Duration(j)*interval
			if wait := time.Until(start.Add(at)); wait > 0 {
				select {
				case <-ctx.Done():
					wg.Wait()
					return out[:i], late, ctx.Err()
				case <-time.After(wait):
				}
			} else if -wait > interval*10 {
				late++
			}
			out[i].at = at
			if inFlight.Load() >= int64(inflight) {
				i++
				continue // counted as an error: not ok
			}
			inFlight.Add(1)
			wg.Add(1)
			go func(s *sample, n int) {
				defer wg.Done()
				defer inFlight.Add(-1)
				var resp *http.Response
				var err error
				if body == nil {
					resp, err = client.Get(target)
				} else {
					resp, err = client.Post(target, "application/json", bytes.NewReader(body(n)))
				}
				if err != nil {
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				s.took = time.Since(start.Add(s.at))
				s.ok = resp.StatusCode == http.StatusOK
				s.degraded = bytes.Contains(b, []byte(`"degraded"`))
			}(&out[i], i)
			i++
		}
		offset += p.d
	}
	wg.Wait()
	return out, late, nil
}

// summarize fills a result's latency percentiles and shares from samples.
func summarize(res *loadResult, samples []sample) {
	lat := make([]time.Duration, 0, len(samples))
	res.sent = len(samples)
	for _, s := range samples {
		if !s.ok {
			res.errors++
			continue
		}
		if s.degraded {
			res.degraded++
		}
		lat = append(lat, s.took)
	}
	res.ok = len(lat)
	slices.Sort(lat)
	res.lat = lat
	if len(lat) > 0 {
		res.p50, res.p90, res.p99, res.max = percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 0.99), lat[len(lat)-1]
	}
}

// pairSummary sums up A B pairs: the median of the pairs' p99 differences
// and the p99 of all B requests together minus that of all A requests (one
// noisy pair moves the first less; the second weighs every request alike),
// then the median of the pairs' differences in the server's CPU time per
// request, which a busy host moves least, and the host's steal share over
// the A and over the B runs, which says how busy it was.
func pairSummary(as, bs []loadResult) string {
	d, cpu := make([]float64, len(as)), make([]float64, len(as))
	var a, b []time.Duration
	var stealA, stealB float64
	for i := range as {
		d[i] = ms(bs[i].p99) - ms(as[i].p99)
		cpu[i] = 1000 * (bs[i].cpuPerReq - as[i].cpuPerReq)
		a, b = append(a, as[i].lat...), append(b, bs[i].lat...)
		stealA, stealB = stealA+as[i].steal/float64(len(as)), stealB+bs[i].steal/float64(len(bs))
	}
	slices.Sort(a)
	slices.Sort(b)
	out := fmt.Sprintf("median of the pairs' p99 differences %+.2f ms; all B requests' p99 %.2f ms minus all A requests' %.2f ms: %+.2f ms; "+
		"server CPU per request, median of the pairs' differences %+.3f ms",
		median(d), ms(percentile(b, 0.99)), ms(percentile(a, 0.99)), ms(percentile(b, 0.99))-ms(percentile(a, 0.99)), median(cpu))
	if stealA >= 0 && stealB >= 0 {
		out += fmt.Sprintf("; host steal %.1f%% (A) and %.1f%% (B) of CPU time", 100*stealA, 100*stealB)
	}
	return out
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// hostCPU reads the host's CPU time counters from /proc/stat: the steal
// (time a hypervisor gave the virtual CPUs to others) and the total; ok is
// false where there is no such file.
func hostCPU() (steal, total float64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return cpuLine(string(b))
}

// cpuLine reads the steal and total of /proc/stat's first line.
func cpuLine(stat string) (steal, total float64, ok bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i == 7 {
			steal = n
		}
	}
	return steal, total, true
}

// loadRun sends rate requests per second for d and collects latencies and
// the server's CPU, allocation and stage counters over the run.
func loadRun(ctx context.Context, client *http.Client, base, target string, body func(int) []byte, rate float64, d time.Duration, inflight int) (loadResult, error) {
	before, err := scrape(ctx, client, base)
	if err != nil {
		return loadResult{}, err
	}
	start := time.Now()
	steal0, total0, known0 := hostCPU()
	samples, late, err := drive(ctx, client, target, body, []phase{{rate, d}}, inflight)
	if err != nil {
		return loadResult{}, err
	}
	elapsed := time.Since(start)
	steal1, total1, known1 := hostCPU()
	after, err := scrape(ctx, client, base)
	if err != nil {
		return loadResult{}, err
	}
	res := loadResult{rate: rate, late: late, steal: -1}
	if known0 && known1 && total1 > total0 {
		res.steal = (steal1 - steal0) / (total1 - total0)
	}
	summarize(&res, samples)
	reqs := float64(max(res.sent, 1))
	delta := func(name string) float64 { return after[name] - before[name] }
	res.cpuPerReq = delta("process_cpu_seconds_total") / reqs
	res.allocsPerReq = delta("go_memstats_mallocs_total") / reqs
	res.bytesPerReq = delta("go_memstats_alloc_bytes_total") / reqs
	res.serverSecond = elapsed.Seconds()
	res.stages = map[string]float64{}
	for name := range after {
		stage, ok := strings.CutPrefix(name, "stage_sum:")
		if !ok {
			continue
		}
		if n := delta("stage_count:" + stage); n > 0 {
			res.stages[stage] = delta(name) / n
		}
	}
	return res, nil
}

// scrape reads what bench serve needs from /metrics: the process's CPU and
// allocation counters, the consumer lag (summed over groups), and the
// engine's stage histograms' sums and counts for the surface, keyed
// "stage_sum:<stage>" and "stage_count:<stage>".
func scrape(ctx context.Context, client *http.Client, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench serve: scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, _ := strings.Cut(line, " ")
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			continue
		}
		switch {
		case name == "process_cpu_seconds_total", name == "go_memstats_mallocs_total", name == "go_memstats_alloc_bytes_total",
			name == "recsys_items_offset", name == "recsys_items_apply_lag_seconds_sum", name == "recsys_items_apply_lag_seconds_count":
			out[name] = v
		case strings.HasPrefix(name, "recsys_feedback_consumer_lag{"):
			out["lag"] += v
		case strings.HasPrefix(name, "recsys_engine_stage_duration_seconds_sum{"), strings.HasPrefix(name, "recsys_engine_stage_duration_seconds_count{"):
			kind := "stage_sum:"
			if strings.Contains(name, "_count{") {
				kind = "stage_count:"
			}
			if stage := label(name, "stage"); stage != "" {
				out[kind+label(name, "surface")+"/"+stage] += v
			}
		}
	}
	return out, sc.Err()
}

// label reads one label's value from a metric line's name part.
func label(name, key string) string {
	_, rest, ok := strings.Cut(name, key+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// overloadRun runs the normal rate, an overload, and the normal rate
// again, printing each second (requests sent in it: p99, degraded share,
// errors; the consumer lag at its end) and when the recovery phase got
// back to the baseline's p99 and degraded share and the lag to zero.
func overloadRun(ctx context.Context, stdout io.Writer, client *http.Client, base, target string, body func(int) []byte,
	rate, factor float64, ds []time.Duration, inflight int) error {
	phases := []phase{{rate, ds[0]}, {rate * factor, ds[1]}, {rate, ds[2]}}
	var (
		lagMu sync.Mutex
		lags  []float64 // at the end of each second
	)
	lctx, stop := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				m, err := scrape(lctx, client, base)
				lagMu.Lock()
				if err != nil {
					lags = append(lags, -1)
				} else {
					lags = append(lags, m["lag"])
				}
				lagMu.Unlock()
			}
		}
	}()
	samples, _, err := drive(ctx, client, target, body, phases, inflight)
	// Keep watching the lag after the last request until it drains.
	for deadline := time.Now().Add(ds[2]); err == nil && time.Now().Before(deadline); time.Sleep(time.Second) {
		lagMu.Lock()
		drained := len(lags) > 0 && lags[len(lags)-1] == 0
		lagMu.Unlock()
		if drained {
			break
		}
	}
	stop()
	<-lagDone
	if err != nil {
		return err
	}
	secs := int((ds[0] + ds[1] + ds[2]).Seconds())
	per := make([][]sample, secs)
	for _, sm := range samples {
		if i := int(sm.at / time.Second); i < secs {
			per[i] = append(per[i], sm)
		}
	}
	stats := make([]loadResult, secs)
	fmt.Fprintf(stdout, "%4s %-9s %6s %6s %8s %9s %9s\n", "s", "phase", "sent", "errors", "p99_ms", "degraded", "lag")
	for i := range per {
		summarize(&stats[i], per[i])
		name := "normal"
		switch at := time.Duration(i) * time.Second; {
		case at >= ds[0]+ds[1]:
			name = "recovery"
		case at >= ds[0]:
			name = "overload"
		}
		lag := "?"
		if i < len(lags) && lags[i] >= 0 {
			lag = strconv.FormatFloat(lags[i], 'f', 0, 64)
		}
		fmt.Fprintf(stdout, "%4d %-9s %6d %6d %8.2f %8.1f%% %9s\n", i, name, stats[i].sent, stats[i].errors, ms(stats[i].p99),
			100*float64(stats[i].degraded)/float64(max(stats[i].ok, 1)), lag)
	}
	var normal loadResult
	summarize(&normal, slices.Concat(per[:int(ds[0].Seconds())]...))
	p99Bound := max(2*normal.p99, normal.p99+5*time.Millisecond)
	degBound := float64(normal.degraded)/float64(max(normal.ok, 1)) + 0.01
	from := int((ds[0] + ds[1]).Seconds())
	back := -1
	for i := secs - 1; i >= from; i-- {
		st := stats[i]
		if st.p99 > p99Bound || float64(st.degraded)/float64(max(st.ok, 1)) > degBound || st.errors > 0 {
			break
		}
		back = i
	}
	fmt.Fprintf(stdout, "baseline: p99 %.2f ms, degraded %.1f%%; recovered (p99 under %.2f ms, degraded under %.1f%%, no errors, to the end): ",
		ms(normal.p99), 100*(degBound-0.01), ms(p99Bound), 100*degBound)
	if back < 0 {
		fmt.Fprintln(stdout, "not within the recovery phase")
	} else {
		fmt.Fprintf(stdout, "%d s after the overload ended\n", back-from)
	}
	lagMu.Lock()
	defer lagMu.Unlock()
	if len(lags) == 0 {
		fmt.Fprintln(stdout, "consumer lag: no readings")
		return nil
	}
	// Drained: back within the baseline's lag (a batch fetched and not
	// yet applied counts) from a second on, to the end.
	var baseLag float64
	for _, l := range lags[:min(len(lags), int(ds[0].Seconds()))] {
		baseLag = max(baseLag, l)
	}
	lagBack := -1
	for i := len(lags) - 1; i >= from && lags[i] >= 0 && lags[i] <= baseLag; i-- {
		lagBack = i
	}
	if lagBack < 0 {
		fmt.Fprintf(stdout, "consumer lag not back within the baseline's %.0f (last %.0f, peak %.0f)\n", baseLag, lags[len(lags)-1], slices.Max(lags))
		return nil
	}
	firstZero := "never 0"
	peak := from + slices.Index(lags[from:], slices.Max(lags[from:]))
	if z := slices.Index(lags[peak:], 0); z >= 0 {
		firstZero = fmt.Sprintf("first 0 %d s after the overload ended", peak+z-from)
	}
	fmt.Fprintf(stdout, "consumer lag %s; within the baseline's %.0f from %d s, to the end (peak %.0f)\n",
		firstZero, baseLag, lagBack-from, slices.Max(lags))
	return nil
}
