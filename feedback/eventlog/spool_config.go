package eventlog

import (
	"errors"
	"time"
)

// ErrSpoolFull is returned by Spool.Append when the entries would not fit in
// MaxBytes. The HTTP layer answers 503 with Retry-After: refusing is the only
// way to stay bounded without dropping something that was acknowledged.
var ErrSpoolFull = errors.New("feedback spool full")

// Spool defaults applied to zero fields of SpoolConfig.
const (
	DefaultSpoolMaxBytes     = 1 << 30
	DefaultSpoolSegmentBytes = 64 << 20
	DefaultSpoolRetryAfter   = 5 * time.Second
)

// SpoolConfig configures the on-disk spool that holds events while Kafka is
// unreachable.
type SpoolConfig struct {
	// Dir holds the segment files and the drain cursor. Empty disables the
	// spool: events are then refused (503) while Kafka is unreachable.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool on disk; 0 means 1 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a new segment file starts; drained
	// segments are deleted whole. 0 means 64 MiB.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// RetryAfter is what a 503 for a full spool tells clients; 0 means 5s.
	RetryAfter time.Duration `yaml:"retry_after"`
}

// Validate reports every invalid key, naming it.
func (c SpoolConfig) Validate() error {
	var errs []error
	if c.MaxBytes < 0 {
		errs = append(errs, errors.New("max_bytes: must be >= 0 (0 means 1 GiB)"))
	}
	if c.SegmentBytes < 0 {
		errs = append(errs, errors.New("segment_bytes: must be >= 0 (0 means 64 MiB)"))
	}
	if c.SegmentBytes > 0 && c.MaxBytes > 0 && c.SegmentBytes > c.MaxBytes {
		errs = append(errs, errors.New("segment_bytes: must be <= max_bytes"))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, errors.New("retry_after: must be >= 0 (0 means 5s)"))
	}
	return errors.Join(errs...)
}

func (c SpoolConfig) withDefaults() SpoolConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultSpoolMaxBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = min(DefaultSpoolSegmentBytes, c.MaxBytes)
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultSpoolRetryAfter
	}
	return c
}
