package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/recsys-dev/recsys/api"
)

// TestApplyGC: serve runs with server.gc_percent and memory_limit_bytes
// unless Go's own GOGC and GOMEMLIMIT are set, and the runtime holds what
// applyGC reports.
func TestApplyGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(percent); debug.SetMemoryLimit(limit) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	read := func() (int, int64) {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1)
	}

	c := api.DefaultConfig()
	if c.GCPercent != 400 || c.MemoryLimitBytes != 0 {
		t.Fatalf("defaults gc_percent %d, memory_limit_bytes %d", c.GCPercent, c.MemoryLimitBytes)
	}
	got := applyGC(c, env(nil), log)
	if p, l := read(); p != 400 || l != math.MaxInt64 || got != (gcSetting{400, math.MaxInt64, "server.gc_percent", "none"}) {
		t.Fatalf("defaults: runtime %d %d, reported %+v", p, l, got)
	}

	c.GCPercent, c.MemoryLimitBytes = 250, 3<<30
	got = applyGC(c, env(nil), log)
	if p, l := read(); p != 250 || l != 3<<30 || got != (gcSetting{250, 3 << 30, "server.gc_percent", "server.memory_limit_bytes"}) {
		t.Fatalf("configured: runtime %d %d, reported %+v", p, l, got)
	}

	// Go applied GOGC=150 and GOMEMLIMIT=1GiB at start; they stay.
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(1 << 30)
	got = applyGC(c, env(map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}), log)
	if p, l := read(); p != 150 || l != 1<<30 || got != (gcSetting{150, 1 << 30, "GOGC", "GOMEMLIMIT"}) {
		t.Fatalf("environment: runtime %d %d, reported %+v", p, l, got)
	}
}
