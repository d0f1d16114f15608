package feedback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Counter defaults applied to zero fields of CountersConfig.
const (
	DefaultCountersGroup  = "recsys-counters"
	DefaultCountersPrefix = "recsys:rt"
	DefaultDedupeWindow   = 24 * time.Hour
)

// CountersConfig configures the real-time counter updater.
type CountersConfig struct {
	// Group is the consumer group; its committed offsets are where a
	// restarted updater resumes.
	Group string `yaml:"group"`
	// KeyPrefix starts every Redis key the updater writes:
	// <prefix>:imp:<item> and <prefix>:clk:<item> (also cart:, buy:),
	// and <prefix>:seen:<event id> for deduplication.
	KeyPrefix string `yaml:"key_prefix"`
	// DedupeWindow is how long an event id is remembered: a duplicate
	// (a client retry, a redelivery after a crash) within it is not
	// counted twice.
	DedupeWindow time.Duration `yaml:"dedupe_window"`
}

// Validate reports every invalid key, naming it.
func (c CountersConfig) Validate() error {
	if c.DedupeWindow < 0 {
		return errors.New("dedupe_window: must be >= 0 (0 means 24h)")
	}
	if c.DedupeWindow > 0 && c.DedupeWindow < time.Second {
		return errors.New("dedupe_window: must be at least 1s")
	}
	return nil
}

func (c CountersConfig) withDefaults() CountersConfig {
	if c.Group == "" {
		c.Group = DefaultCountersGroup
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultCountersPrefix
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	return c
}

// countScript remembers the event id and bumps the counters in one atomic
// step, so a crash can neither count an event without remembering it (a
// double count on redelivery) nor remember it without counting it.
var countScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  for i = 2, #KEYS do redis.call('INCR', KEYS[i]) end
  return 1
end
return 0`)

// Counters is the real-time feature updater: a consumer in a consumer group
// that turns events into per-item counters in Redis (impressions, clicks,
// add-to-carts, purchases). Offsets are committed after Redis has the
// batch, so a crash re-reads at most one batch, which the dedupe absorbs.
type Counters struct {
	cfg    Config
	ccfg   CountersConfig
	rdb    redis.Cmdable
	logger *slog.Logger
	lag    *prometheus.GaugeVec
	events *prometheus.CounterVec

	mu      sync.Mutex
	lags    map[int32]int64
	counted int64
	dups    int64
}

// NewCounters returns an updater reading cfg.Topic into rdb. Run starts it.
func NewCounters(cfg Config, ccfg CountersConfig, rdb redis.Cmdable, logger *slog.Logger, reg prometheus.Registerer) (*Counters, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("feedback config: %w", err)
	}
	if err := ccfg.Validate(); err != nil {
		return nil, fmt.Errorf("counters config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Counters{cfg: cfg.withDefaults(), ccfg: ccfg.withDefaults(), rdb: rdb, logger: logger, lags: map[int32]int64{}}
	c.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "recsys_feedback_consumer_lag",
		Help: "Records on the events topic not yet processed by the consumer group, summed over partitions.",
	}, []string{"group"})
	c.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recsys_feedback_consumed_total",
		Help: "Records processed by a consumer group, by result (counted, duplicate, invalid).",
	}, []string{"group", "result"})
	if reg != nil {
		for _, col := range []prometheus.Collector{c.lag, c.events} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register counters metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Run consumes until ctx ends. Transient Kafka and Redis errors are logged
// and retried; the uncommitted batch is then re-read.
func (c *Counters) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.cfg.Brokers...),
		kgo.ClientID(c.cfg.ClientID+"-counters"),
		kgo.ConsumerGroup(c.ccfg.Group),
		kgo.ConsumeTopics(c.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Retried batches must not be skipped: on a failed Redis write the
		// group is left and rejoined, resuming from the committed offsets.
		kgo.BlockRebalanceOnPoll(),
		kgo.WithLogger(kgoLogger{c.logger.With("component", "kafka-counters")}),
	)
	if err != nil {
		return fmt.Errorf("new kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollRecords(ctx, 5000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.logger.Warn("counters: fetch", "topic", topic, "partition", p, "err", err)
		})
		recs := fetches.Records()
		err := c.apply(ctx, recs)
		if err == nil {
			err = cl.CommitRecords(ctx, recs...)
		}
		if err != nil {
			c.logger.Warn("counters: batch not applied, re-reading from the committed offsets", "err", err)
			c.rewind(cl, recs)
			cl.AllowRebalance()
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				c.setLag(p.Partition, p.HighWatermark-(p.Records[n-1].Offset+1))
			}
		})
		cl.AllowRebalance()
	}
}

// rewind makes the next poll return recs again (the batch that failed),
// so nothing is skipped.
func (c *Counters) rewind(cl *kgo.Client, recs []*kgo.Record) {
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

func (c *Counters) setLag(p int32, lag int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lags[p] = max(lag, 0)
	var sum int64
	for _, l := range c.lags {
		sum += l
	}
	c.lag.WithLabelValues(c.ccfg.Group).Set(float64(sum))
}

// apply counts every valid event of recs in one Redis pipeline.
func (c *Counters) apply(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	pipe := c.rdb.Pipeline()
	ttl := strconv.Itoa(int(c.ccfg.DedupeWindow / time.Second))
	var cmds []*redis.Cmd
	invalid := 0
	for _, r := range recs {
		ev, err := unmarshalStrict(r.Value)
		if err == nil {
			err = ev.validateStructure()
		}
		if err != nil || ev.EventID == "" {
			invalid++
			continue
		}
		keys := append([]string{c.ccfg.KeyPrefix + ":seen:" + ev.EventID}, c.counterKeys(&ev)...)
		cmds = append(cmds, countScript.Eval(ctx, pipe, keys, ttl))
	}
	if len(cmds) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("update counters: %w", err)
		}
	}
	var counted, dups int64
	for _, cmd := range cmds {
		if n, _ := cmd.Int64(); n == 1 {
			counted++
		} else {
			dups++
		}
	}
	c.mu.Lock()
	c.counted += counted
	c.dups += dups
	c.mu.Unlock()
	c.events.WithLabelValues(c.ccfg.Group, "counted").Add(float64(counted))
	c.events.WithLabelValues(c.ccfg.Group, "duplicate").Add(float64(dups))
	c.events.WithLabelValues(c.ccfg.Group, "invalid").Add(float64(invalid))
	return nil
}

func (c *Counters) counterKeys(ev *Event) []string {
	p := c.ccfg.KeyPrefix
	switch ev.Type {
	case TypeImpression:
		keys := make([]string, len(ev.Items))
		for i, it := range ev.Items {
			keys[i] = p + ":imp:" + it.ItemID
		}
		return keys
	case TypeClick:
		return []string{p + ":clk:" + ev.ItemID}
	case TypeAddToCart:
		return []string{p + ":cart:" + ev.ItemID}
	case TypePurchase:
		return []string{p + ":buy:" + ev.ItemID}
	}
	return nil // dwell: remembered, not counted (no counter feature yet)
}

// Stats returns how many distinct events were counted and how many
// duplicates were skipped since Run started.
func (c *Counters) Stats() (counted, duplicates int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counted, c.dups
}

// Lag returns the last observed lag summed over partitions.
func (c *Counters) Lag() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum int64
	for _, l := range c.lags {
		sum += l
	}
	return sum
}
