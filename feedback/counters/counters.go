package counters

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/backoff"
)

// Updater is the real-time feature updater: a consumer in a consumer group
// that turns events into per-item counters in Redis (impressions, clicks,
// add-to-carts, purchases). Offsets are committed after Redis has the
// batch, so a crash re-reads at most one batch, which the dedupe absorbs.
type Updater struct {
	cfg         eventlog.Config
	ccfg        Config
	rdb         redis.UniversalClient
	known       func(string) bool
	deadLetters func(context.Context, []eventlog.DeadLetter) error
	logger      *slog.Logger
	lag         *prometheus.GaugeVec
	events      *prometheus.CounterVec
	retries     prometheus.Counter
	lateMarks   *prometheus.CounterVec
	now         func() time.Time // the clock that tells a late event

	mu      sync.Mutex
	lags    map[int32]int64
	counted int64
	dups    int64

	// chunk is how many records one pipeline carries now: halved when a
	// batch times out (an overloaded Redis), doubled back after successes.
	chunk atomic.Int64
}

// ReasonUnknownItem starts the dead-letter reason of an event naming an
// item the catalog does not hold.
const ReasonUnknownItem = "unknown_item"

// Options are the updater's collaborators.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Known reports whether an item id is in the live catalog; only those
	// are counted, so Redis stays bounded by the catalog. nil counts every
	// item.
	Known func(id string) bool
	// DeadLetters makes refused events durable on the dead-letter topic
	// (unknown items, poison records); nil logs them.
	DeadLetters func(ctx context.Context, dead []eventlog.DeadLetter) error
}

// New returns an updater reading cfg.Topic into rdb. Run starts it.
func New(cfg eventlog.Config, ccfg Config, rdb redis.UniversalClient, o Options) (*Updater, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("feedback config: %w", err)
	}
	if err := ccfg.Validate(); err != nil {
		return nil, fmt.Errorf("counters config: %w", err)
	}
	logger, reg := o.Logger, o.Registerer
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Updater{cfg: cfg.WithDefaults(), ccfg: ccfg.WithDefaults(), rdb: rdb, logger: logger, lags: map[int32]int64{},
		known: o.Known, deadLetters: o.DeadLetters, now: time.Now}
	c.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "recsys_feedback_consumer_lag",
		Help: "Records on the events topic not yet processed by the consumer group, summed over partitions.",
	}, []string{"group"})
	c.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recsys_feedback_consumed_total",
		Help: "Records processed by a consumer group, by result (counted, duplicate, reread, invalid, unknown_item, poison).",
	}, []string{"group", "result"})
	c.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "recsys_counters_batch_retries_total",
		Help: "Batches the counter updater could not apply (Redis timing out or down) and re-read after a backoff.",
	})
	c.lateMarks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recsys_counters_late_marks_total",
		Help: "Events applied more than kafka.counters.dedupe_window after their timestamp (spooled through an outage, or a lagging consumer), whose dedupe marks are kept for late_dedupe_window.",
	}, []string{"group"})
	c.chunk.Store(maxChunk)
	if reg != nil {
		for _, col := range []prometheus.Collector{c.lag, c.events, c.retries, c.lateMarks} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register counters metrics: %w", err)
			}
		}
	}
	return c, nil
}

// commitTimeout bounds the offset commit of an applied batch.
const commitTimeout = 5 * time.Second

// Run consumes until ctx ends. Transient Kafka and Redis errors are logged
// and retried; the uncommitted batch is then re-read.
func (c *Updater) Run(ctx context.Context) error {
	opts := []kgo.Opt{
		kgo.ClientID(c.cfg.ClientID + "-counters"),
		kgo.ConsumerGroup(c.ccfg.Group),
		kgo.ConsumeTopics(c.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Retried batches must not be skipped: on a failed Redis write the
		// group is left and rejoined, resuming from the committed offsets.
		kgo.BlockRebalanceOnPoll(),
		kgo.WithLogger(eventlog.KafkaLogger(c.logger.With("component", "kafka-counters"))),
	}
	if c.ccfg.BatchWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(c.ccfg.BatchWait), kgo.FetchMinBytes(batchBytes))
	}
	cl, err := c.cfg.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	failures := 0
	for {
		fetches := cl.PollRecords(ctx, 5000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.logger.Warn("counters: fetch", "topic", topic, "partition", p, "error", err)
		})
		// Until applied, the fetched records count as lag: a batch that
		// takes long or is retried for a while shows as a backlog, not as
		// the zero of the last good fetch.
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				c.setLag(p.Partition, p.HighWatermark-p.Records[0].Offset)
			}
		})
		recs := fetches.Records()
		done, err := c.apply(ctx, recs)
		if err != nil && ctx.Err() == nil && refused(err) {
			// Redis refused a command: a record is poison. Apply them one
			// by one and dead-letter the ones that fail, rather than retry
			// the batch forever.
			if err = c.isolate(ctx, recs[done:], err); err == nil {
				done = len(recs)
			}
		}
		if err == nil {
			// A batch Redis holds is committed even when shutdown began
			// meanwhile: the next run would otherwise re-read it and find
			// only duplicates.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
			err = cl.CommitRecords(cctx, recs...)
			cancel()
		}
		if err != nil && done > 0 && done < len(recs) {
			// The chunks before the failure are in Redis: commit them, so
			// the retry re-reads only the rest.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
			if cerr := cl.CommitRecords(cctx, recs[:done]...); cerr == nil {
				recs = recs[done:]
			}
			cancel()
		}
		if err != nil {
			// A timeout or an outage: smaller pipelines, and a pause that
			// doubles while it lasts, so an overloaded Redis is given
			// room rather than the same batch again at once.
			failures++
			pause := min(retryBase<<min(failures-1, 10), retryMax)
			if c.chunk.Load() > minChunk {
				c.chunk.Store(max(c.chunk.Load()/2, minChunk))
			}
			c.retries.Inc()
			c.logger.Warn("counters: batch not applied, re-reading from the committed offsets", "error", err,
				"records", len(recs), "chunk", c.chunk.Load(), "retry_in", pause)
			c.rewind(cl, recs)
			cl.AllowRebalance()
			if !backoff.Sleep(ctx, pause) {
				return nil
			}
			continue
		}
		failures = 0
		if n := c.chunk.Load(); n < maxChunk {
			c.chunk.Store(min(2*n, maxChunk))
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				c.setLag(p.Partition, p.HighWatermark-(p.Records[n-1].Offset+1))
			}
		})
		cl.AllowRebalance()
	}
}

// isolate applies recs one at a time after the batch failed with cause
// while Redis answered, dead-lettering each record that fails on its own.
func (c *Updater) isolate(ctx context.Context, recs []*kgo.Record, cause error) error {
	c.logger.Warn("counters: a batch failed while Redis answers; applying its records one by one", "records", len(recs), "error", cause)
	for _, r := range recs {
		_, err := c.apply(ctx, []*kgo.Record{r})
		if err == nil {
			continue
		}
		if ctx.Err() != nil || c.rdb.Ping(ctx).Err() != nil {
			return err // Redis went away meanwhile: an outage, retry later
		}
		c.events.WithLabelValues(c.ccfg.Group, "poison").Inc()
		d := eventlog.DeadLetter{Source: "counters", Index: -1, Field: "record", Reason: "poison: " + err.Error(),
			Payload: string(r.Value), Key: string(r.Key)}
		if err := c.deadLetter(ctx, []eventlog.DeadLetter{d}); err != nil {
			return err
		}
	}
	return nil
}

// rewind makes the next poll return recs again (the batch that failed),
// so nothing is skipped.
func (c *Updater) rewind(cl *kgo.Client, recs []*kgo.Record) {
	offs := map[int32]kgo.EpochOffset{}
	for _, r := range recs {
		if o, ok := offs[r.Partition]; !ok || r.Offset < o.Offset {
			offs[r.Partition] = kgo.EpochOffset{Epoch: -1, Offset: r.Offset}
		}
	}
	if len(offs) > 0 {
		cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{c.cfg.Topic: offs})
	}
}

func (c *Updater) setLag(p int32, lag int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lags[p] = max(lag, 0)
	var sum int64
	for _, l := range c.lags {
		sum += l
	}
	c.lag.WithLabelValues(c.ccfg.Group).Set(float64(sum))
}

// unknown says why an event cannot be counted: it names an item the
// catalog does not hold (so any client could grow Redis without bound).
// An impression is counted for its known items and refused only when
// none is known.
func (c *Updater) unknown(ev *feedback.Event) string {
	if c.known == nil {
		return ""
	}
	switch ev.Type {
	case feedback.TypeImpression:
		for _, it := range ev.Items {
			if c.known(it.ItemID) {
				return ""
			}
		}
		return ReasonUnknownItem + ": no item of the impression is in the catalog"
	case feedback.TypeDwell:
		return ""
	}
	if !c.known(ev.ItemID) {
		return ReasonUnknownItem + ": " + ev.ItemID + " is not in the catalog"
	}
	return ""
}

func (c *Updater) deadLetter(ctx context.Context, dead []eventlog.DeadLetter) error {
	if c.deadLetters == nil {
		c.logger.Warn("counters: events refused (no dead-letter topic configured)", "events", len(dead), "first", dead[0].Reason)
		return nil
	}
	if err := c.deadLetters(ctx, dead); err != nil {
		return fmt.Errorf("update counters: dead letters: %w", err)
	}
	return nil
}

// Stats returns how many distinct events were counted and how many
// duplicates were skipped since Run started.
func (c *Updater) Stats() (counted, duplicates int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counted, c.dups
}

// Lag returns the last observed lag summed over partitions.
func (c *Updater) Lag() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum int64
	for _, l := range c.lags {
		sum += l
	}
	return sum
}
