package cftrain

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// synthetic draws n interactions of users users on items items, seeded:
// item popularity Zipf-like (a flattened head, a long tail), user activity
// log-normal (mean n/users, a tail of users with hundreds), times over 90
// days before t0, weights 1 with one in ten a 3 (a purchase).
func synthetic(seed uint64, n, users, items int) []Interaction {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	zipf := rand.NewZipf(rng, 1.05, 20, uint64(items-1))
	// Item numbers by popularity rank would put all popular items first;
	// a permutation spreads them, as a catalog does.
	perm := rng.Perm(items)
	act := make([]float64, users)
	var sum float64
	for u := range act {
		act[u] = math.Exp(rng.NormFloat64())
		sum += act[u]
	}
	in := make([]Interaction, 0, n)
	for u := range users {
		k := int(act[u]/sum*float64(n) + rng.Float64())
		for range k {
			if len(in) == n {
				break
			}
			w := float32(1)
			if rng.IntN(10) == 0 {
				w = 3
			}
			in = append(in, Interaction{
				User: int32(u), Item: int32(perm[zipf.Uint64()]),
				Time: t0.Add(-time.Duration(rng.Int64N(int64(90 * 24 * time.Hour)))), Weight: w,
			})
		}
	}
	for len(in) < n { // rounding left a few: give them to random users
		in = append(in, Interaction{User: int32(rng.IntN(users)), Item: int32(perm[zipf.Uint64()]), Time: t0, Weight: 1})
	}
	return in
}

// peakRSS is VmHWM in bytes, or 0 where /proc is not there.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:")); ok {
			kb, _ := strconv.ParseFloat(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 64)
			return kb * 1024
		}
	}
	return 0
}

// resetPeakRSS restarts VmHWM at the current RSS (Linux >= 4.0), so each
// trainer's peak is its own; it reports whether it could.
func resetPeakRSS() bool {
	runtime.GC()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// BenchmarkTrain1M trains both sources on 1,000,000 synthetic
// interactions (50k users, 10k items) with the default configs and
// reports each run's seconds, the process's peak RSS during it (VmHWM,
// reset before; it includes the ~60 MiB of input) and the heap it
// allocated. Run it alone: go test -run - -bench Train1M -benchtime 1x.
func BenchmarkTrain1M(b *testing.B) {
	const n, users, items = 1_000_000, 50_000, 10_000
	in := synthetic(42, n, users, items)
	ctx := context.Background()
	run := func(b *testing.B, train func() (Report, error)) {
		b.ReportAllocs()
		var before, after runtime.MemStats
		var rep Report
		for b.Loop() {
			reset := resetPeakRSS()
			runtime.ReadMemStats(&before)
			var err error
			if rep, err = train(); err != nil {
				b.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if reset {
				b.ReportMetric(peakRSS()/(1<<20), "peak-RSS-MiB")
			}
		}
		b.ReportMetric(rep.Seconds, "train-s")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "alloc-MiB")
		b.ReportMetric(float64(after.HeapSys)/(1<<20), "heap-sys-MiB")
		if rep.Pairs > 0 {
			b.ReportMetric(float64(rep.Pairs), "pairs")
		}
		b.Logf("%+v", rep)
	}
	b.Run("neighbours", func(b *testing.B) {
		run(b, func() (Report, error) {
			_, rep, err := TrainNeighbours(ctx, in, items, t0, DefaultNeighboursConfig())
			return rep, err
		})
	})
	// Without the heavy-user cap, to show what it saves in time.
	b.Run("neighbours-uncapped", func(b *testing.B) {
		cfg := DefaultNeighboursConfig()
		cfg.MaxUserItems = 0
		run(b, func() (Report, error) {
			_, rep, err := TrainNeighbours(ctx, in, items, t0, cfg)
			return rep, err
		})
	})
	b.Run("sequence", func(b *testing.B) {
		cfg := DefaultNeighboursConfig()
		cfg.Method = MethodSequence
		run(b, func() (Report, error) {
			_, rep, err := TrainNeighbours(ctx, in, items, t0, cfg)
			return rep, err
		})
	})
	b.Run("als", func(b *testing.B) {
		run(b, func() (Report, error) {
			_, rep, err := TrainALS(ctx, in, users, items, t0, DefaultALSConfig())
			return rep, err
		})
	})
}

// TestSynthetic checks the generator the benchmark stands on: the count,
// the ranges and a skewed popularity.
func TestSynthetic(t *testing.T) {
	in := synthetic(1, 20000, 1000, 500)
	if len(in) != 20000 {
		t.Fatalf("%d interactions, want 20000", len(in))
	}
	count := make([]int, 500)
	for _, x := range in {
		if x.User < 0 || x.User >= 1000 || x.Item < 0 || x.Item >= 500 {
			t.Fatalf("out of range: %+v", x)
		}
		count[x.Item]++
	}
	top := 0
	for _, c := range count {
		top = max(top, c)
	}
	if top < 5*20000/500 { // five times the mean
		t.Fatalf("most popular item has %d interactions, not skewed", top)
	}
}
