package counters

import (
	"context"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/internal/realtime"
)

// Counter defaults applied to zero fields of Config.
const (
	DefaultCountersGroup  = "recsys-counters"
	DefaultCountersPrefix = "recsys:rt"
	DefaultDedupeWindow   = 24 * time.Hour
	DefaultHalfLife       = 72 * time.Hour
	DefaultHistoryLength  = 50
	DefaultHistoryTTL     = 30 * 24 * time.Hour
)

// Config configures the real-time counter updater.
type Config struct {
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
}

// Validate reports every invalid key, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.DedupeWindow < 0 {
		errs = append(errs, errors.New("dedupe_window: must be >= 0 (0 means 24h)"))
	}
	if c.DedupeWindow > 0 && c.DedupeWindow < time.Second {
		errs = append(errs, errors.New("dedupe_window: must be at least 1s"))
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

// countScript remembers the event id and applies the event in one atomic
// step, so a crash can neither count an event without remembering it (a
// double count on redelivery) nor remember it without counting it.
//
// KEYS: the seen key, then ARGV[2] raw counters to INCR, then ARGV[3] decayed
// item keys (internal/realtime) to bump, then, when ARGV[7] is not empty, the
// user's history list. ARGV: 1 dedupe TTL s, 2 and 3 the key counts, 4 the
// decayed field (1 impressions, 2 clicks), 5 event time ms, 6 half-life ms,
// 7 the item to push on the history, 8 history length, 9 history TTL ms,
// 10 decayed keys' TTL ms.
//
// A decayed value is "<impressions> <clicks> <reference ms>". An event newer
// than the reference decays the counts to its time and adds 1; an older one
// (events arrive out of order across partitions) adds its own decayed weight.
var countScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local nIncr, nDecay = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 2, 1 + nIncr do redis.call('INCR', KEYS[i]) end
local field, t, h = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
for i = 2 + nIncr, 1 + nIncr + nDecay do
  local imp, clk, ref = 0, 0, t
  local v = redis.call('GET', KEYS[i])
  if v then
    local a, b, c = string.match(v, '^(%S+) (%S+) (%S+)$')
    if c then imp, clk, ref = tonumber(a), tonumber(b), tonumber(c) end
  end
  local add = 1
  if t >= ref then
    local f = 2 ^ (-(t - ref) / h)
    imp, clk, ref = imp * f, clk * f, t
  else
    add = 2 ^ (-(ref - t) / h)
  end
  if field == 1 then imp = imp + add else clk = clk + add end
  redis.call('SET', KEYS[i], string.format('%.9g %.9g %.0f', imp, clk, ref), 'PX', ARGV[10])
end
if ARGV[7] ~= '' then
  local k = KEYS[#KEYS]
  redis.call('LPUSH', k, ARGV[7])
  redis.call('LTRIM', k, 0, tonumber(ARGV[8]) - 1)
  redis.call('PEXPIRE', k, ARGV[9])
end
return 1`)

// Updater is the real-time feature updater: a consumer in a consumer group
// that turns events into per-item counters in Redis (impressions, clicks,
// add-to-carts, purchases). Offsets are committed after Redis has the
// batch, so a crash re-reads at most one batch, which the dedupe absorbs.
type Updater struct {
	cfg    eventlog.Config
	ccfg   Config
	rdb    redis.Cmdable
	logger *slog.Logger
	lag    *prometheus.GaugeVec
	events *prometheus.CounterVec

	mu      sync.Mutex
	lags    map[int32]int64
	counted int64
	dups    int64
}

// New returns an updater reading cfg.Topic into rdb. Run starts it.
func New(cfg eventlog.Config, ccfg Config, rdb redis.Cmdable, logger *slog.Logger, reg prometheus.Registerer) (*Updater, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("feedback config: %w", err)
	}
	if err := ccfg.Validate(); err != nil {
		return nil, fmt.Errorf("counters config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Updater{cfg: cfg.WithDefaults(), ccfg: ccfg.WithDefaults(), rdb: rdb, logger: logger, lags: map[int32]int64{}}
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

// commitTimeout bounds the offset commit of an applied batch.
const commitTimeout = 5 * time.Second

// Run consumes until ctx ends. Transient Kafka and Redis errors are logged
// and retried; the uncommitted batch is then re-read.
func (c *Updater) Run(ctx context.Context) error {
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
		kgo.WithLogger(eventlog.KafkaLogger(c.logger.With("component", "kafka-counters"))),
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
			// A batch Redis holds is committed even when shutdown began
			// meanwhile: the next run would otherwise re-read it and find
			// only duplicates.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
			err = cl.CommitRecords(cctx, recs...)
			cancel()
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

// apply counts every valid event of recs in one Redis pipeline.
func (c *Updater) apply(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	pipe := c.rdb.Pipeline()
	ttl := strconv.Itoa(int(c.ccfg.DedupeWindow / time.Second))
	var cmds []*redis.Cmd
	invalid := 0
	for _, r := range recs {
		ev, err := feedback.DecodeStored(r.Value)
		if err != nil || ev.EventID == "" {
			invalid++
			continue
		}
		keys, args := c.scriptArgs(&ev, ttl)
		cmds = append(cmds, countScript.Eval(ctx, pipe, keys, args...))
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

// scriptArgs lays out countScript's keys and arguments for one event.
func (c *Updater) scriptArgs(ev *feedback.Event, ttl string) ([]string, []any) {
	p := c.ccfg.KeyPrefix
	keys := []string{p + ":seen:" + ev.EventID}
	var decayed []string
	field, histItem := 2, ""
	switch ev.Type {
	case feedback.TypeImpression:
		field = 1
		for _, it := range ev.Items {
			keys = append(keys, p+":imp:"+it.ItemID)
			decayed = append(decayed, realtime.ItemKey(p, it.ItemID))
		}
	case feedback.TypeClick:
		keys = append(keys, p+":clk:"+ev.ItemID)
		decayed = append(decayed, realtime.ItemKey(p, ev.ItemID))
		histItem = ev.ItemID
	case feedback.TypeAddToCart:
		keys = append(keys, p+":cart:"+ev.ItemID)
		histItem = ev.ItemID
	case feedback.TypePurchase:
		keys = append(keys, p+":buy:"+ev.ItemID)
		histItem = ev.ItemID
	}
	// dwell: remembered, not counted (no dwell feature yet).
	nIncr := len(keys) - 1
	keys = append(keys, decayed...)
	if histItem != "" && ev.UserID != "" {
		keys = append(keys, realtime.UserKey(p, ev.UserID))
	} else {
		histItem = ""
	}
	hl := c.ccfg.HalfLife.Milliseconds()
	return keys, []any{ttl, nIncr, len(decayed), field, ev.Timestamp.UnixMilli(), hl,
		histItem, c.ccfg.HistoryLength, c.ccfg.HistoryTTL.Milliseconds(), max(10*hl, (24 * time.Hour).Milliseconds())}
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

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
