package api

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/recsys-dev/recsys/engine"
)

// Config holds the HTTP server settings. Start from DefaultConfig: Validate
// rejects zero values rather than silently replacing them, so a key left out
// of a hand-written config is reported instead of guessed.
type Config struct {
	// Addr is the listen address used by cmd/ (Serve itself takes a listener).
	Addr string `yaml:"addr"`
	// AdminAddr is where the admin API (POST /admin/reload) listens; it
	// has no authentication, so keep it on loopback or a private network.
	// Empty disables it.
	AdminAddr string `yaml:"admin_addr"`
	// PprofAddr serves net/http/pprof (CPU, heap, allocation, goroutine
	// profiles) for the operator; it must be a loopback address, since a
	// profile shows internals. Empty (the default) disables it.
	PprofAddr string `yaml:"pprof_addr"`
	// GCPercent is the garbage collector's target (Go's GOGC) while
	// serving: a collection starts when the heap has grown this many
	// percent over the live heap. The default, 400, trades memory for
	// fewer collections: item changes at 10,000/s allocate about 5 KB
	// each, and at Go's 100 their collections cost search p99 about 1 ms
	// more (see the README). -1 turns the collector off and needs
	// MemoryLimitBytes. A GOGC environment variable takes precedence.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimitBytes is the runtime's soft memory limit (Go's
	// GOMEMLIMIT): near it the collector runs as often as it must,
	// whatever GCPercent says. 0 is none. A GOMEMLIMIT environment
	// variable takes precedence.
	MemoryLimitBytes int64 `yaml:"memory_limit_bytes"`
	// BodyLimitBytes caps a request body; larger bodies get 413.
	BodyLimitBytes int `yaml:"body_limit_bytes"`
	// RequestTimeout is the deadline given to every request's context.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxK is the largest k a client may ask for.
	MaxK int `yaml:"max_k"`
	// DefaultK is used when a request leaves k out.
	DefaultK int `yaml:"default_k"`
	// MaxRecentItems and MaxBatchEvents cap a recommendation's
	// recent_items and a feedback batch: a request's cost is bounded by
	// what a client may send.
	MaxRecentItems int `yaml:"max_recent_items"`
	MaxBatchEvents int `yaml:"max_batch_events"`
	// ReadTimeout and WriteTimeout bound the connection I/O; WriteTimeout
	// must exceed RequestTimeout or slow answers are cut mid-response.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// CheckTimeout bounds the readiness checks run by GET /readyz; it is
	// short because orchestrators probe often and expect a quick answer.
	CheckTimeout time.Duration `yaml:"check_timeout"`
	// IdleTimeout closes keep-alive connections idle this long, on both
	// listeners.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Playground serves the playground page at / (search, recommend,
	// explanations, a rule editor wired to the dry run).
	Playground bool `yaml:"playground"`
	// AccessLog is the share of successful requests logged at info (one
	// line each: route, status, duration, client, key); server errors
	// are always logged, everything at debug.
	AccessLog float64 `yaml:"access_log"`
	// Auth is who may call what; Limits how often.
	Auth   AuthConfig   `yaml:"auth"`
	Limits LimitsConfig `yaml:"limits"`
}

// DefaultConfig returns the settings used on one machine.
func DefaultConfig() Config {
	return Config{
		Addr:           "127.0.0.1:8080",
		AdminAddr:      "127.0.0.1:8081",
		GCPercent:      400,
		BodyLimitBytes: 1 << 20,
		RequestTimeout: 2 * time.Second,
		MaxK:           1000,
		DefaultK:       10,
		MaxRecentItems: 100,
		MaxBatchEvents: 1000,
		ReadTimeout:    10 * time.Second,
		WriteTimeout:   10 * time.Second,
		CheckTimeout:   time.Second,
		IdleTimeout:    60 * time.Second,
		AccessLog:      0.01,
		Auth:           AuthConfig{Keys: []KeySpec{}, UserTokens: UserTokensOff},
		Playground:     true,
	}
}

// Validate reports every invalid key, each error naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if c.Addr == "" {
		bad("addr", "must not be empty")
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr", "must be host:port: %w", err)
	}
	if c.AdminAddr != "" {
		if _, port, err := net.SplitHostPort(c.AdminAddr); err != nil {
			bad("admin_addr", "must be host:port or empty: %w", err)
		} else if c.AdminAddr == c.Addr && port != "0" {
			bad("admin_addr", "must differ from addr")
		}
	}
	if c.PprofAddr != "" {
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			bad("pprof_addr", "must be a loopback host:port such as 127.0.0.1:6060 (profiles show internals)")
		}
	}
	switch {
	case c.GCPercent == -1 && c.MemoryLimitBytes <= 0:
		bad("gc_percent", "-1 (no collection but at the memory limit) needs memory_limit_bytes")
	case c.GCPercent < -1 || c.GCPercent == 0:
		bad("gc_percent", "must be > 0, or -1 with memory_limit_bytes")
	}
	if c.MemoryLimitBytes < 0 {
		bad("memory_limit_bytes", "must be >= 0 (0: no limit)")
	}
	if c.BodyLimitBytes <= 0 {
		bad("body_limit_bytes", "must be > 0")
	}
	if c.RequestTimeout <= 0 {
		bad("request_timeout", "must be > 0")
	}
	if c.MaxK <= 0 || c.MaxK > engine.MaxK {
		bad("max_k", "must be in 1..%d (the engine's limit)", engine.MaxK)
	}
	if c.DefaultK <= 0 {
		bad("default_k", "must be > 0")
	} else if c.MaxK > 0 && c.DefaultK > c.MaxK {
		bad("default_k", "must be <= max_k (%d)", c.MaxK)
	}
	if c.MaxRecentItems < 1 || c.MaxRecentItems > maxRecentItems {
		bad("max_recent_items", "must be in 1..%d", maxRecentItems)
	}
	if c.MaxBatchEvents < 1 || c.MaxBatchEvents > MaxBatchEvents {
		bad("max_batch_events", "must be in 1..%d", MaxBatchEvents)
	}
	if c.ReadTimeout <= 0 {
		bad("read_timeout", "must be > 0")
	}
	if c.WriteTimeout <= 0 {
		bad("write_timeout", "must be > 0")
	} else if c.RequestTimeout > 0 && c.WriteTimeout <= c.RequestTimeout {
		bad("write_timeout", "must be > request_timeout (%s)", c.RequestTimeout)
	}
	if c.CheckTimeout <= 0 {
		bad("check_timeout", "must be > 0")
	}
	if c.AccessLog < 0 || c.AccessLog > 1 {
		bad("access_log", "must be a share in [0, 1]")
	}
	if c.IdleTimeout <= 0 {
		bad("idle_timeout", "must be > 0")
	}
	if c.Limits.QueryRPS < 0 || c.Limits.FeedbackRPS < 0 || c.Limits.QueryBurst < 0 || c.Limits.FeedbackBurst < 0 {
		bad("limits", "rates and bursts must be >= 0 (0: no limit)")
	}
	return errors.Join(errs...)
}
