package main

import (
	"log/slog"
	"runtime/debug"

	"github.com/recsys-dev/recsys/api"
)

// gcSetting is the collector's target and soft memory limit a serving
// process runs with, and where each came from.
type gcSetting struct {
	Percent     int
	Limit       int64 // bytes; math.MaxInt64 is none
	PercentFrom string
	LimitFrom   string
}

// applyGC sets the collector's target and soft memory limit from
// server.gc_percent and server.memory_limit_bytes, unless the GOGC and
// GOMEMLIMIT variables Go reads itself are set (getenv), and logs what
// holds. Process-wide: serve calls it, not Open, which tests start many
// times in one process.
func applyGC(c api.Config, getenv func(string) string, log *slog.Logger) gcSetting {
	s := gcSetting{Percent: c.GCPercent, PercentFrom: "server.gc_percent", LimitFrom: "server.memory_limit_bytes"}
	if getenv("GOGC") != "" {
		s.PercentFrom = "GOGC"
		s.Percent = debug.SetGCPercent(-1)
	}
	debug.SetGCPercent(s.Percent)
	switch {
	case getenv("GOMEMLIMIT") != "":
		s.LimitFrom = "GOMEMLIMIT"
	case c.MemoryLimitBytes > 0:
		debug.SetMemoryLimit(c.MemoryLimitBytes)
	default:
		s.LimitFrom = "none"
	}
	s.Limit = debug.SetMemoryLimit(-1) // a negative limit only reads
	log.Info("garbage collector", "gc_percent", s.Percent, "from", s.PercentFrom, "memory_limit_bytes", s.Limit, "limit_from", s.LimitFrom)
	return s
}
