package eventlog

import (
	"context"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Range selects the part of the events topic a Replay reads. Times are the
// records' log times (when the broker accepted them), which is what Kafka
// can seek by; an event's own time is in feedback.Event.Timestamp.
type Range struct {
	// From starts every partition at its first record at or after this
	// time; zero means the beginning of the log.
	From time.Time
	// FromOffsets, when set, starts the listed partitions at these offsets
	// instead (partitions not listed start per From).
	FromOffsets map[int32]int64
	// Until ends every partition before its first record at or after this
	// time; zero means the end of the log when Replay starts. A past Until
	// makes a replay repeatable even while new events arrive.
	Until time.Time
}

// Replay reads cfg.Topic over r and calls fn for every valid event, one
// partition after the other in partition order and each in offset order,
// so two replays of the same range see the same events in the same order:
// the training reader ("batch is a replay of the stream"). It commits
// nothing and can run any number of times. Invalid records are counted in
// ReadStats.Invalid and, when dead is not nil, passed to it with the reason.
func Replay(ctx context.Context, cfg Config, r Range, logger *slog.Logger, dead func(DeadLetter), fn func(feedback.Event, *kgo.Record) error) (ReadStats, error) {
	var stats ReadStats
	if err := cfg.Validate(); err != nil {
		return stats, fmt.Errorf("feedback config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	kl := kgo.WithLogger(kgoLogger{logger.With("component", "kafka-replay")})
	admin, err := cfg.NewClient(kgo.ClientID(cfg.ClientID), kl)
	if err != nil {
		return stats, err
	}
	bounds, err := replayBounds(ctx, admin, cfg.Topic, r)
	admin.Close()
	if err != nil {
		return stats, fmt.Errorf("replay %s: %w", cfg.Topic, err)
	}
	parts := make([]int32, 0, len(bounds))
	for p := range bounds {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		b := bounds[p]
		if b[0] >= b[1] {
			continue
		}
		if err := replayPartition(ctx, cfg, p, b[0], b[1], kl, &stats, logger, dead, fn); err != nil {
			return stats, err
		}
	}
	return stats, nil
}

func replayPartition(ctx context.Context, cfg Config, p int32, start, end int64, kl kgo.Opt, stats *ReadStats,
	logger *slog.Logger, dead func(DeadLetter), fn func(feedback.Event, *kgo.Record) error) error {
	cl, err := cfg.NewClient(
		kgo.ClientID(cfg.ClientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: {p: kgo.NewOffset().At(start)}}),
		kl,
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	next := start
	for next < end {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replay %s/%d: %w", cfg.Topic, p, err)
		}
		if err := fetchError(fetches); err != nil {
			return fmt.Errorf("replay %s: %w", cfg.Topic, err)
		}
		for _, rec := range fetches.Records() {
			if rec.Offset < next || rec.Offset >= end {
				continue
			}
			next = rec.Offset + 1
			stats.Records++
			ev, err := feedback.DecodeStored(rec.Value)
			if err != nil {
				stats.Invalid++
				if dead != nil {
					d := DeadLetter{Source: "replay", Index: -1, Reason: err.Error(), Payload: string(rec.Value), Key: string(rec.Key)}
					var fe *feedback.FieldError
					if errors.As(err, &fe) {
						d.Field, d.Reason = fe.Field, fe.Reason
					}
					dead(d)
				}
				continue
			}
			stats.Events++
			if err := fn(ev, rec); err != nil {
				return fmt.Errorf("handle record %d/%d: %w", rec.Partition, rec.Offset, err)
			}
		}
	}
	return nil
}

// replayBounds returns [start, end) offsets per partition for r.
func replayBounds(ctx context.Context, cl *kgo.Client, topic string, r Range) (map[int32][2]int64, error) {
	parts, err := partitionsOf(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	earliest, err := listOffsets(ctx, cl, topic, parts, -2)
	if err != nil {
		return nil, err
	}
	latest, err := listOffsets(ctx, cl, topic, parts, -1)
	if err != nil {
		return nil, err
	}
	start, end := earliest, latest
	if !r.From.IsZero() {
		if start, err = listOffsets(ctx, cl, topic, parts, r.From.UnixMilli()); err != nil {
			return nil, err
		}
	}
	if !r.Until.IsZero() {
		if end, err = listOffsets(ctx, cl, topic, parts, r.Until.UnixMilli()); err != nil {
			return nil, err
		}
	}
	out := make(map[int32][2]int64, len(parts))
	for _, p := range parts {
		s, e := start[p], end[p]
		// A time past the last record answers -1: nothing from there.
		if s < 0 {
			s = latest[p]
		}
		if e < 0 {
			e = latest[p]
		}
		if o, ok := r.FromOffsets[p]; ok {
			s = o
		}
		s = max(s, earliest[p])
		e = min(e, latest[p])
		out[p] = [2]int64{s, e}
	}
	return out, nil
}

func partitionsOf(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
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
	if err := kerr.ErrorForCode(mresp.Topics[0].ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, ErrUnknownTopic
		}
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var parts []int32
	for _, p := range mresp.Topics[0].Partitions {
		parts = append(parts, p.Partition)
	}
	return parts, nil
}

// listOffsets asks, per partition, for the offset at timestamp: -2 the
// earliest, -1 the end, otherwise the first record at or after it.
func listOffsets(ctx context.Context, cl *kgo.Client, topic string, parts []int32, timestamp int64) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range parts {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p
		lp.Timestamp = timestamp
		lp.CurrentLeaderEpoch = -1
		lt.Partitions = append(lt.Partitions, lp)
	}
	req.Topics = append(req.Topics, lt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := make(map[int32]int64, len(parts))
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
