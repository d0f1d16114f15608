package eventlog

import (
	"context"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrUnknownTopic is returned by ReadTopic when the topic does not exist,
// which for the training job means "no feedback yet" rather than a failure.
var ErrUnknownTopic = errors.New("topic does not exist")

// ReadStats summarises one ReadTopic call.
type ReadStats struct {
	// Records is how many records were read, valid or not.
	Records int
	// Events is how many were valid events passed to fn.
	Events int
	// Invalid is how many records were skipped because their value was not
	// a valid event (or their schema version unknown).
	Invalid int
}

// ReadTopic reads cfg.Topic from the beginning of every partition up to the
// end offsets it sees when it starts, calls fn for every valid event in
// partition order, and returns. It is the "everything so far" read that the
// training job and tests need: it neither follows new records nor commits
// offsets (no consumer group), so it can run any number of times.
//
// Events are validated without the ingestion time window (replayed events
// are allowed to be old); records that are not valid events are skipped and
// counted in ReadStats.Invalid. An error from fn stops the read and is
// returned. The topic is assumed to be written without transactions, as the
// Producer does: an aborted transaction's control record at the end of a
// partition would keep ReadTopic waiting until ctx ends. It is Replay over
// the whole log, logging the first invalid record.
func ReadTopic(ctx context.Context, cfg Config, logger *slog.Logger, fn func(feedback.Event, *kgo.Record) error) (ReadStats, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// One line per read is enough to notice; the count is in the stats.
	logged := false
	warn := func(d DeadLetter) {
		if !logged {
			logged = true
			logger.Warn("skipping invalid feedback record", "key", d.Key, "field", d.Field, "reason", d.Reason)
		}
	}
	return Replay(ctx, cfg, Range{}, logger, warn, fn)
}

// fetchError returns the first error in fetches that ends the read. kgo
// retries transient errors itself and only surfaces the ones it gave up on.
func fetchError(fetches kgo.Fetches) error {
	errs := fetches.Errors()
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("fetch partition %d: %w", errs[0].Partition, errs[0].Err)
}
