package feedback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
// partition would keep ReadTopic waiting until ctx ends.
func ReadTopic(ctx context.Context, cfg Config, logger *slog.Logger, fn func(Event, *kgo.Record) error) (ReadStats, error) {
	var stats ReadStats
	if err := cfg.Validate(); err != nil {
		return stats, fmt.Errorf("feedback config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	kl := kgo.WithLogger(kgoLogger{logger.With("component", "kafka-reader")})
	admin, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID), kl)
	if err != nil {
		return stats, fmt.Errorf("new kafka client: %w", err)
	}
	ends, err := endOffsets(ctx, admin, cfg.Topic)
	admin.Close()
	if err != nil {
		return stats, fmt.Errorf("read topic %s: %w", cfg.Topic, err)
	}
	if len(ends) == 0 {
		return stats, nil
	}

	start := make(map[int32]kgo.Offset, len(ends))
	for p := range ends {
		start[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: start}),
		kl,
	)
	if err != nil {
		return stats, fmt.Errorf("new kafka client: %w", err)
	}
	defer cl.Close()

	loggedInvalid := false
	for len(ends) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return stats, fmt.Errorf("read topic %s: %w", cfg.Topic, err)
		}
		if err := fetchError(fetches); err != nil {
			return stats, fmt.Errorf("read topic %s: %w", cfg.Topic, err)
		}
		var fnErr error
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := ends[r.Partition]
			if fnErr != nil || !ok || r.Offset >= end {
				return // past the snapshot, or a partition already done
			}
			if r.Offset == end-1 {
				delete(ends, r.Partition)
			}
			stats.Records++
			ev, err := unmarshalStrict(r.Value)
			if err == nil {
				err = ev.validateStructure()
			}
			if err != nil {
				stats.Invalid++
				// One line per read is enough to notice; the count is in
				// the returned stats.
				if !loggedInvalid {
					loggedInvalid = true
					logger.Warn("skipping invalid feedback record", "topic", r.Topic,
						"partition", r.Partition, "offset", r.Offset, "err", err)
				}
				return
			}
			stats.Events++
			if err := fn(ev, r); err != nil {
				fnErr = fmt.Errorf("handle record %d/%d: %w", r.Partition, r.Offset, err)
			}
		})
		if fnErr != nil {
			return stats, fnErr
		}
	}
	return stats, nil
}

// endOffsets returns, for every partition of topic that holds records, the
// offset one past its last record at the time of the call.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if len(mresp.Topics) != 1 {
		return nil, fmt.Errorf("metadata: %d topics in the response, want 1", len(mresp.Topics))
	}
	mtopic := mresp.Topics[0]
	if err := kerr.ErrorForCode(mtopic.ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, ErrUnknownTopic
		}
		return nil, fmt.Errorf("metadata: %w", err)
	}

	// Earliest and latest offsets: a partition whose records were all
	// deleted by retention has start == end and would never deliver the
	// record we wait for.
	offsets := func(timestamp int64) (map[int32]int64, error) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = topic
		for _, p := range mtopic.Partitions {
			lp := kmsg.NewListOffsetsRequestTopicPartition()
			lp.Partition = p.Partition
			lp.Timestamp = timestamp
			lp.CurrentLeaderEpoch = -1
			lt.Partitions = append(lt.Partitions, lp)
		}
		req.Topics = append(req.Topics, lt)
		// kgo splits the request by partition leader and merges the answers.
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("list offsets: %w", err)
		}
		out := make(map[int32]int64, len(mtopic.Partitions))
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return nil, fmt.Errorf("list offsets of partition %d: %w", rp.Partition, err)
				}
				out[rp.Partition] = rp.Offset
			}
		}
		return out, nil
	}
	earliest, err := offsets(-2)
	if err != nil {
		return nil, err
	}
	latest, err := offsets(-1)
	if err != nil {
		return nil, err
	}
	ends := make(map[int32]int64, len(latest))
	for p, end := range latest {
		if end > earliest[p] {
			ends[p] = end
		}
	}
	return ends, nil
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
