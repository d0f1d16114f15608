package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/world"
)

// TestBenchServe drives a running server the way the README's table was
// made: a fixed-rate run with the server's CPU, allocations and stages, a
// rate search, and an overload with its recovery.
func TestBenchServe(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	writeWorld(t, dir, world.Config{Items: 1000, Users: 50, Seed: 3})
	buildBundle(t, cfg)
	cfg.Server.PprofAddr = "127.0.0.1:0"
	srv, base := startServer(t, cfg)

	// server.pprof_addr serves net/http/pprof, which the profiles in the
	// README came from; an address that cannot be bound fails the start.
	resp, err := http.Get("http://" + srv.PprofAddr + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	heap, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(heap) == 0 {
		t.Fatalf("pprof heap: %d, %d bytes", resp.StatusCode, len(heap))
	}
	taken := *cfg
	taken.Server.PprofAddr = srv.PprofAddr
	taken.Kafka.Spool.Dir, taken.Embedded.Kafka.DataDir = t.TempDir(), t.TempDir()
	if s2, err := Open(context.Background(), &taken, slog.New(slog.DiscardHandler)); err == nil {
		s2.Close()
		t.Fatal("serve started with its pprof address taken")
	} else if !strings.Contains(err.Error(), "pprof_addr") {
		t.Errorf("error %v does not name server.pprof_addr", err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		args = append([]string{"--url", base, "--items", "1000", "--users", "50", "--seed", "3"}, args...)
		if err := runBenchServe(context.Background(), args, &out, io.Discard); err != nil {
			t.Fatalf("bench serve %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}

	out := run("--rate", "40", "--duration", "2s")
	row := regexp.MustCompile(`(?m)^\s+40\s+80\s+0\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+([\d.]+)\s+(\d+)\s+[\d.]+$`).FindStringSubmatch(out)
	if row == nil || row[1] == "0.000" || row[2] == "0" {
		t.Fatalf("no row of 80 requests at 40/s, none failed, with the server's CPU and allocations:\n%s", out)
	}
	if !strings.Contains(out, "mean ms per stage: embed") || !strings.Contains(out, "rules") {
		t.Errorf("no stage means:\n%s", out)
	}

	// The host's unit: GET /healthz, answered 200 and costing the server
	// CPU (no stage means: it runs no engine stage).
	out = run("--surface", "healthz", "--rate", "40", "--duration", "2s")
	if row := regexp.MustCompile(`(?m)^\s+40\s+80\s+0\s+.*\s([\d.]+)\s+\d+\s+[\d.]+$`).FindStringSubmatch(out); row == nil || row[1] == "0.000" {
		t.Errorf("no row of 80 healthz requests at 40/s, none failed, with the server's CPU:\n%s", out)
	}
	if strings.Contains(out, "mean ms per stage") {
		t.Errorf("healthz ran engine stages:\n%s", out)
	}

	out = run("--surface", "recommend", "--find-max", "--rate", "20", "--step", "20", "--duration", "1s", "--p99", "1ns")
	if !strings.Contains(out, "highest rate with p99 under 1ns and no errors: 0 requests/s") {
		t.Errorf("an unreachable p99 bound must stop at the first step:\n%s", out)
	}

	out = run("--rate", "20", "--overload", "2", "--baseline", "2s", "--overload-for", "2s", "--recover-for", "3s")
	for _, want := range []string{" overload ", " recovery ", "baseline: p99", "consumer lag"} {
		if !strings.Contains(out, want) {
			t.Errorf("overload report lacks %q:\n%s", want, out)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^\s+\d+ (normal|overload|recovery)\s`).FindAllString(out, -1)); n != 7 {
		t.Errorf("%d per-second rows, want 7:\n%s", n, out)
	}

	// Item changes during every other run: the server applies them (its
	// offset moves by what was accepted), refuses none, and the pair's cost
	// is reported. A batch may be skipped while eight wait for their
	// answer (a loaded machine under -race).
	before := srv.Engine.ItemsOffset()
	out = run("--rate", "20", "--duration", "1s", "--item-updates", "500", "--text-share", "0.1", "--pairs", "1", "--admin-url", "http://"+srv.AdminAddr)
	m := regexp.MustCompile(`pair 1: (\d+) changes accepted \(\d+/s\), (\d+) applied, mean apply lag [\d.]+ ms, 0 batches failed, \d+ skipped \(8 in flight\); p99 [+-][\d.]+ ms with changes`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" || m[1] != m[2] {
		t.Fatalf("no pair report with every accepted change applied:\n%s", out)
	}
	if got := srv.Engine.ItemsOffset() - before; fmt.Sprint(got) != m[1] {
		t.Errorf("server offset moved by %d, report says %s accepted", got, m[1])
	}
}

// TestPairSummary checks the pairs' summary: the median of the per-pair
// p99 differences (even and odd counts), the pooled p99s, the median CPU
// difference and the mean steal shares.
func TestPairSummary(t *testing.T) {
	run := func(ms ...int) loadResult {
		var r loadResult
		for _, m := range ms {
			r.lat = append(r.lat, time.Duration(m)*time.Millisecond)
		}
		r.p99 = percentile(r.lat, 0.99)
		r.cpuPerReq = float64(ms[0]) / 1000 / 4 // a quarter of its latency
		r.steal = 0.01 * float64(ms[0])
		return r
	}
	// Pair p99s: A 1, 2, 3; B 2, 6, 3: differences +1, +4, 0 (median +1).
	as := []loadResult{run(1), run(2), run(3)}
	bs := []loadResult{run(2), run(6), run(3)}
	got := pairSummary(as, bs)
	// CPU per request: A 0.25, 0.5, 0.75; B 0.5, 1.5, 0.75: +0.25, +1, 0.
	// Steal: A 1%, 2%, 3% (mean 2%); B 2%, 6%, 3% (mean 3.7%).
	want := "median of the pairs' p99 differences +1.00 ms; all B requests' p99 6.00 ms minus all A requests' 3.00 ms: +3.00 ms; " +
		"server CPU per request, median of the pairs' differences +0.250 ms; host steal 2.0% (A) and 3.7% (B) of CPU time"
	if got != want {
		t.Errorf("three pairs:\n got %s\nwant %s", got, want)
	}
	got = pairSummary(as[:2], bs[:2]) // +1 and +4: median +2.5
	if !strings.HasPrefix(got, "median of the pairs' p99 differences +2.50 ms;") {
		t.Errorf("two pairs: %s", got)
	}
}

// TestCPULine reads the steal (the eighth number) and the total of
// /proc/stat's first line, and refuses other lines.
func TestCPULine(t *testing.T) {
	steal, total, ok := cpuLine("cpu  805689 250 170872 2748489 37913 0 13443 42534 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if !ok || steal != 42534 || total != 805689+250+170872+2748489+37913+13443+42534 {
		t.Errorf("cpuLine = %v, %v, %v", steal, total, ok)
	}
	for _, bad := range []string{"", "intr 1 2 3 4 5 6 7 8 9", "cpu 1 2 3", "cpu 1 2 3 4 5 6 7 x 9"} {
		if _, _, ok := cpuLine(bad); ok {
			t.Errorf("cpuLine(%q) accepted", bad)
		}
	}
}
