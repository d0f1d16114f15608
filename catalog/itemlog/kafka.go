package itemlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback/eventlog"
)

// partition is the items topic's only partition.
const partition = 0

// ErrNoTopic is returned by End and Replay when the items topic does not
// exist yet: no change was ever written.
var ErrNoTopic = errors.New("the items topic does not exist")

// Log reads and writes the items topic over the connection settings of the
// event log (brokers, TLS, SASL).
type Log struct {
	cfg   eventlog.Config
	topic string
	log   *slog.Logger
	cl    *kgo.Client // producer and admin
}

// Open returns a Log for topic ("" is DefaultTopic). It does not connect:
// the first call does.
func Open(cfg eventlog.Config, topic string, logger *slog.Logger) (*Log, error) {
	if topic == "" {
		topic = DefaultTopic
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	cl, err := cfg.NewClient(
		kgo.ClientID(cfg.ClientID),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout),
		kgo.ProducerLinger(0),
		kgo.WithLogger(eventlog.KafkaLogger(logger.With("component", "kafka-items"))),
	)
	if err != nil {
		return nil, err
	}
	return &Log{cfg: cfg, topic: topic, log: logger, cl: cl}, nil
}

// Topic is the items topic's name.
func (l *Log) Topic() string { return l.topic }

// Close closes the client.
func (l *Log) Close() { l.cl.Close() }

// Ensure creates the topic when missing: one partition, compacted, with
// the durability the event log's topics get.
func (l *Log) Ensure(ctx context.Context) error {
	return eventlog.CreateTopic(ctx, l.cl, l.cfg, l.topic, 1, map[string]string{"cleanup.policy": "compact"})
}

// writeBufs are Write's encoding buffers.
var writeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Write appends changes in order and returns the offset of each once the
// broker acknowledged all of them.
func (l *Log) Write(ctx context.Context, changes []Change) ([]int64, error) {
	// Keys and values share one pooled buffer and the records one array:
	// the admin API writes changes by the thousand a second, and the
	// broker is done with them when ProduceSync returns.
	buf := writeBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer writeBufs.Put(buf)
	enc := gojson.NewEncoder(buf)
	recs := make([]*kgo.Record, len(changes))
	arr := make([]kgo.Record, len(changes))
	ends := make([]int, len(changes)) // each record is its id, its value and a newline
	for i := range changes {
		buf.WriteString(changes[i].ID)
		if err := encodeTo(enc, &changes[i]); err != nil {
			return nil, fmt.Errorf("change %d: %w", i, err)
		}
		ends[i] = buf.Len()
	}
	// Sliced once the buffer stopped growing.
	b, start := buf.Bytes(), 0
	for i := range changes {
		mid, end := start+len(changes[i].ID), ends[i]-1
		arr[i] = kgo.Record{Key: b[start:mid:mid], Value: b[mid:end:end], Partition: partition}
		recs[i] = &arr[i]
		start = ends[i]
	}
	res := l.cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		return nil, fmt.Errorf("write to %s: %w", l.topic, err)
	}
	offs := make([]int64, len(res))
	for i, r := range res {
		offs[i] = r.Record.Offset
	}
	return offs, nil
}

// End is the offset the next change will get (the partition's high
// watermark).
func (l *Log) End(ctx context.Context) (int64, error) {
	adm := kadm.NewClient(l.cl)
	offs, err := adm.ListEndOffsets(ctx, l.topic)
	if err != nil {
		return 0, fmt.Errorf("end offset of %s: %w", l.topic, err)
	}
	o, ok := offs.Lookup(l.topic, partition)
	if !ok {
		return 0, fmt.Errorf("end offset of %s: %w", l.topic, ErrNoTopic)
	}
	if o.Err != nil {
		if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			return 0, fmt.Errorf("end offset of %s: %w", l.topic, ErrNoTopic)
		}
		return 0, fmt.Errorf("end offset of %s: %w", l.topic, o.Err)
	}
	return o.Offset, nil
}

// Replay calls fn for every change at offsets [from, to), in order. An
// undecodable record is passed to bad (it is skipped) so a poison record
// cannot stop every replica.
func (l *Log) Replay(ctx context.Context, from, to int64, bad func(offset int64, err error), fn func(Change) error) error {
	if from >= to {
		return nil
	}
	done := errors.New("done")
	err := l.Follow(ctx, from, bad, func(batch []Change, next int64) error {
		for _, c := range batch {
			if c.Offset >= to {
				return done
			}
			if err := fn(c); err != nil {
				return err
			}
		}
		if next >= to {
			return done
		}
		return nil
	})
	if errors.Is(err, done) {
		return nil
	}
	return err
}

// followWait is how long the broker may hold Follow's fetch while the topic
// has nothing new.
const followWait = 2 * time.Second

// Follow reads the topic from offset from until ctx ends or fn fails,
// calling fn with each fetched batch of changes and the offset after it.
// A fetch error is retried (the client backs off); an undecodable record
// goes to bad and is skipped.
func (l *Log) Follow(ctx context.Context, from int64, bad func(offset int64, err error), fn func(batch []Change, next int64) error) error {
	cl, err := l.cfg.NewClient(
		kgo.ClientID(l.cfg.ClientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: {partition: kgo.NewOffset().At(from)}}),
		// The broker answers a fetch as soon as a change arrives; the wait
		// only bounds how often an idle reader asks again (at 100 ms the
		// two idle consumers were most of an idle server's CPU).
		kgo.FetchMaxWait(followWait),
		kgo.WithLogger(eventlog.KafkaLogger(l.log.With("component", "kafka-items-reader"))),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	var batch []Change
	var warned time.Time
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errs := fetches.Errors(); len(errs) > 0 && time.Since(warned) > 30*time.Second {
			// The client retries by itself; one line every 30 s says so.
			warned = time.Now()
			l.log.Warn("items topic fetch failed; retrying", "topic", l.topic, "error", errs[0].Err)
		}
		batch = batch[:0]
		next := int64(-1)
		fetches.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			c, err := Decode(r.Value, r.Offset)
			if err != nil {
				if bad != nil {
					bad(r.Offset, err)
				}
				return
			}
			batch = append(batch, c)
		})
		if next < 0 {
			continue
		}
		if err := fn(batch, next); err != nil {
			return err
		}
	}
}
