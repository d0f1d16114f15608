package counters

import (
	"errors"
	"time"
)

// Counter defaults applied to zero fields of Config.
const (
	DefaultCountersGroup  = "recsys-counters"
	DefaultCountersPrefix = "recsys:rt"
	DefaultDedupeWindow   = 10 * time.Minute
	DefaultLateWindow     = 24 * time.Hour
	DefaultHalfLife       = 72 * time.Hour
	DefaultHistoryLength  = 50
	DefaultHistoryTTL     = 30 * 24 * time.Hour
)

// Config configures the real-time counter updater.
type Config struct {
	// Group is the consumer group; its committed offsets are where a
	// restarted updater resumes.
	Group string `yaml:"group"`
	// KeyPrefix starts every Redis key the updater writes (the layout of
	// internal/realtime: decayed item counts, user histories, dedupe marks).
	KeyPrefix string `yaml:"key_prefix"`
	// DedupeWindow is how long the id of an event applied on time (within
	// DedupeWindow of its timestamp) is remembered: a duplicate within it
	// (a client's retry, the spooled copy of an impression the broker took
	// late, a spool batch drained again after a crash) is not counted
	// twice. Every such copy arrives within minutes of the first, and a
	// mark per event costs the store memory (at 2,000 events/s a 24 h
	// window is 170 million keys), so the window is short.
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// LateWindow is how long the id of a late event is remembered: one
	// applied more than DedupeWindow after its timestamp, which waited in
	// a spool or a client's buffer through an outage, where its copies
	// may arrive hours apart.
	LateWindow time.Duration `yaml:"late_dedupe_window"`
	// HalfLife is how fast the decayed per-item impression and click
	// counts (the ranker's counter features) forget: they halve every
	// HalfLife. An item without events for 10 half-lives (at least a day)
	// is dropped from Redis.
	HalfLife time.Duration `yaml:"half_life"`
	// HistoryLength is how many recent actions (click, add to cart,
	// purchase) are kept per user, for the user-item cross features.
	HistoryLength int `yaml:"history_length"`
	// HistoryTTL drops the history of a user inactive this long.
	HistoryTTL time.Duration `yaml:"history_ttl"`
	// BatchWait is how long the broker may hold the updater's fetch for
	// more events: fewer and larger batches (one dedupe pipeline, one
	// script per item touched and one offset commit for each), for counts
	// and histories up to BatchWait later. 0 answers a fetch as soon as
	// one event is there.
	BatchWait time.Duration `yaml:"batch_wait"`
}

// batchBytes is the fetch size that ends a BatchWait early.
const batchBytes = 1 << 20

// Validate reports every invalid key, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.DedupeWindow < 0 {
		errs = append(errs, errors.New("dedupe_window: must be >= 0 (0 means 10m)"))
	}
	if c.DedupeWindow > 0 && c.DedupeWindow < time.Second {
		errs = append(errs, errors.New("dedupe_window: must be at least 1s"))
	}
	if c.LateWindow < 0 || (c.LateWindow > 0 && c.LateWindow < time.Second) {
		errs = append(errs, errors.New("late_dedupe_window: must be at least 1s (0 means 24h)"))
	}
	if c.LateWindow > 0 && c.DedupeWindow > c.LateWindow {
		errs = append(errs, errors.New("late_dedupe_window: must be at least dedupe_window"))
	}
	if c.HalfLife < 0 || (c.HalfLife > 0 && c.HalfLife < time.Second) {
		errs = append(errs, errors.New("half_life: must be at least 1s (0 means 72h)"))
	}
	if c.HistoryLength < 0 || c.HistoryLength > 1000 {
		errs = append(errs, errors.New("history_length: must be in 0..1000 (0 means 50)"))
	}
	if c.HistoryTTL < 0 || (c.HistoryTTL > 0 && c.HistoryTTL < time.Minute) {
		errs = append(errs, errors.New("history_ttl: must be at least 1m (0 means 720h)"))
	}
	if c.BatchWait < 0 || c.BatchWait > 5*time.Second {
		errs = append(errs, errors.New("batch_wait: must be in 0s..5s"))
	}
	return errors.Join(errs...)
}

// WithDefaults fills zero fields with the Default* values.
func (c Config) WithDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultCountersGroup
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultCountersPrefix
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.LateWindow == 0 {
		c.LateWindow = max(DefaultLateWindow, c.DedupeWindow)
	}
	if c.HalfLife == 0 {
		c.HalfLife = DefaultHalfLife
	}
	if c.HistoryLength == 0 {
		c.HistoryLength = DefaultHistoryLength
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	return c
}
