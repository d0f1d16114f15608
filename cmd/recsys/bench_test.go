package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/world"
)

// BenchmarkServer measures whole requests over HTTP against a 10k-item
// bundle (real redis-server, embedded Kafka): p50/p99 latency per surface.
// search-dense-vs-hybrid sends each query in both retrieval modes. Every
// listener binds port 0; RECSYS_BENCH_REDIS_ADDR points it at a running
// Redis instead of starting redis-server (which is checked to be the
// process it started, so it runs beside other servers).
func BenchmarkServer(b *testing.B) {
	dir := b.TempDir()
	addr := os.Getenv("RECSYS_BENCH_REDIS_ADDR")
	if addr == "" {
		addr = realRedis(b)
	}
	cfg := testConfig(b, dir, addr)
	wcfg := world.Config{Items: 10000, Users: 200, Seed: 1}
	if err := world.Write(filepath.Join(dir, "world"), wcfg, io.Discard); err != nil {
		b.Fatal(err)
	}
	buildBundle(b, cfg)
	_, base := startServer(b, cfg)
	w, err := world.New(wcfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	client := &http.Client{Timeout: 5 * time.Second}

	run := func(b *testing.B, path string, body func(i int) any) {
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			payload, _ := json.Marshal(body(i))
			start := time.Now()
			resp, err := client.Post(base+path, "application/json", bytes.NewReader(payload))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(start))
			if resp.StatusCode != 200 {
				b.Fatalf("%s: status %d", path, resp.StatusCode)
			}
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.Run("search", func(b *testing.B) {
		run(b, "/v1/search", func(i int) any {
			u := w.User(i % wcfg.Users)
			return map[string]any{"query": w.Query(&u, rng), "k": 10, "user": map[string]any{"id": u.ID, "age": u.Age}}
		})
	})
	// The same query in both modes, alternating which goes first (the
	// second finds its embedding cached), so the two latency sets share the
	// machine's moments: their difference is what lexical retrieval and
	// fusion add to a request.
	b.Run("search-dense-vs-hybrid", func(b *testing.B) {
		qrng := rand.New(rand.NewPCG(3, 4))
		lat := map[string][]time.Duration{}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			u := w.User(i % wcfg.Users)
			q := w.Query(&u, qrng)
			modes := []string{"dense", "hybrid"}
			if i%2 == 1 {
				modes[0], modes[1] = modes[1], modes[0]
			}
			for _, mode := range modes {
				payload, _ := json.Marshal(map[string]any{"query": q, "k": 10, "retrieval": mode,
					"user": map[string]any{"id": u.ID, "age": u.Age}})
				start := time.Now()
				resp, err := client.Post(base+"/v1/search", "application/json", bytes.NewReader(payload))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[mode] = append(lat[mode], time.Since(start))
				if resp.StatusCode != 200 {
					b.Fatalf("%s: status %d", mode, resp.StatusCode)
				}
			}
		}
		b.StopTimer()
		for _, mode := range []string{"dense", "hybrid"} {
			l := lat[mode]
			slices.Sort(l)
			b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, mode+"-p50-ms")
			b.ReportMetric(float64(l[len(l)*99/100].Microseconds())/1000, mode+"-p99-ms")
		}
	})
	b.Run("recommend", func(b *testing.B) {
		run(b, "/v1/recommend", func(i int) any {
			u := w.User(i % wcfg.Users)
			recent := []string{world.ItemID(rng.IntN(wcfg.Items)), world.ItemID(rng.IntN(wcfg.Items)), world.ItemID(rng.IntN(wcfg.Items))}
			return map[string]any{"user": map[string]any{"id": u.ID, "age": u.Age}, "recent_items": recent, "k": 10}
		})
	})
}
