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
	"sync/atomic"
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
	// KeyPrefix starts every Redis key the updater writes (the layout of
	// internal/realtime: decayed item counts, user histories, dedupe marks).
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

// A record is applied exactly once per key even though a redelivered
// batch, a client's retry and a spool redelivery all bring records again,
// and although on a Redis Cluster one event's keys live on several nodes
// (no script may touch them together):
//
//   - The event's dedupe mark (realtime.SeenKey) is set to "<partition>:
//     <offset>" of the first record that carried it. Another record with
//     the same event id is a duplicate and is skipped; the same record read
//     again (a batch re-read after a crash) goes on.
//   - Each key then applies the record once: the item counts and the user
//     history store the last offset per partition they applied, and a
//     record at or below it changes nothing. A crash half-way through an
//     event's keys is completed by the re-read without counting twice.
//
// Every script touches keys of one hash slot (see internal/realtime).

// itemScript applies the records of one chunk that touch one item to its
// decayed counts, in record order, so a popular item costs one call per
// chunk rather than one per impression. KEYS[1]: the item key. ARGV: 1
// half-life ms, 2 TTL ms, then per record a group of four: field (1
// impressions, 2 clicks), event time ms, partition, offset. The value is
// "<impressions> <clicks> <reference ms>" and then "<partition>:<offset>"
// tokens. A record at or below its partition's stored offset was applied
// before and is skipped. An event newer than the reference decays the
// counts to its time and adds 1; an older one (events arrive out of order
// across partitions) adds its own decayed weight. The reply has one
// character per group: 1 applied, 0 skipped.
var itemScript = redis.NewScript(itemLua)

const itemLua = `
local hl = tonumber(ARGV[1])
local imp, clk, ref = 0, 0, nil
local offs, order = {}, {}
local v = redis.call('GET', KEYS[1])
if v then
  local i = 0
  for tok in string.gmatch(v, '%S+') do
    i = i + 1
    if i == 1 then imp = tonumber(tok) or 0
    elseif i == 2 then clk = tonumber(tok) or 0
    elseif i == 3 then ref = tonumber(tok)
    else
      local p, o = string.match(tok, '^(%d+):(%d+)$')
      if p and not offs[p] then offs[p] = tonumber(o); order[#order + 1] = p end
    end
  end
end
local applied, changed = {}, false
for g = 3, #ARGV, 4 do
  local t, p, o = tonumber(ARGV[g + 1]), ARGV[g + 2], tonumber(ARGV[g + 3])
  if offs[p] and offs[p] >= o then
    applied[#applied + 1] = '0'
  else
    if not offs[p] then order[#order + 1] = p end
    offs[p] = o
    if ref == nil then ref = t end
    local add = 1
    if t >= ref then
      local f = 2 ^ (-(t - ref) / hl)
      imp, clk, ref = imp * f, clk * f, t
    else
      add = 2 ^ (-(ref - t) / hl)
    end
    if ARGV[g] == '1' then imp = imp + add else clk = clk + add end
    applied[#applied + 1] = '1'
    changed = true
  end
end
if changed then
  local out = string.format('%.9g %.9g %.0f', imp, clk, ref)
  for _, q in ipairs(order) do out = out .. ' ' .. q .. ':' .. string.format('%.0f', offs[q]) end
  redis.call('SET', KEYS[1], out, 'PX', ARGV[2])
end
return table.concat(applied)`

// userScript pushes one record's item onto a user's history. KEYS: the
// history list and its offset key (one hash tag). ARGV: 1 item, 2 history
// length, 3 TTL ms, 4 partition, 5 offset.
var userScript = redis.NewScript(userLua)

const userLua = `
local last = redis.call('GET', KEYS[2])
if last then
  local p, o = string.match(last, '^(%d+):(%d+)$')
  if p == ARGV[4] and tonumber(o) >= tonumber(ARGV[5]) then return 0 end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[4] .. ':' .. ARGV[5], 'PX', ARGV[3])
return 1`

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
		known: o.Known, deadLetters: o.DeadLetters}
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
	c.chunk.Store(maxChunk)
	if reg != nil {
		for _, col := range []prometheus.Collector{c.lag, c.events, c.retries} {
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
	opts, err := c.cfg.ClientOpts(
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
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("new kafka client: %w", err)
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
			if !sleep(ctx, pause) {
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

// A chunk is how many records one round of pipelines covers: large
// enough to amortise round trips, small enough that one Exec stays well
// inside the client's read timeout on a busy server. It starts at
// maxChunk and adapts (Updater.chunk).
const (
	maxChunk = 256
	minChunk = 8
)

// The pause after a failed batch starts at retryBase and doubles with
// each failure in a row, up to retryMax.
const (
	retryBase = 250 * time.Millisecond
	retryMax  = 30 * time.Second
)

// apply counts every valid event of recs, chunk by chunk, and says how
// many leading records are applied: on an error, the chunks before the
// failing one are done, and re-reading them would count them again.
func (c *Updater) apply(ctx context.Context, recs []*kgo.Record) (int, error) {
	n := int(c.chunk.Load())
	if n <= 0 {
		n = maxChunk
	}
	for start := 0; start < len(recs); start += n {
		if err := c.applyChunk(ctx, recs[start:min(start+n, len(recs))]); err != nil {
			return start, err
		}
	}
	return len(recs), nil
}

// refused reports whether err is Redis answering a command with an error
// (a wrong type, a script error): the records are at fault, not the
// connection. Timeouts, refused connections and closed clients are not.
func refused(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil)
}

// work is one decoded record on its way into Redis.
type work struct {
	rec  *kgo.Record
	ev   feedback.Event
	mark string // "<partition>:<offset>"
	set  *redis.BoolCmd
	get  *redis.StringCmd
	cmds []*redis.Cmd // the user scripts queued for it
	// groups are its places in the chunk's item scripts.
	groups []group
}

// group is one record's place in an item script call: the call and the
// group's index in its reply.
type group struct {
	cmd *redis.Cmd
	at  int
}

func (c *Updater) applyChunk(ctx context.Context, recs []*kgo.Record) error {
	p := c.ccfg.KeyPrefix
	var (
		ws      []*work
		invalid int
		dead    []eventlog.DeadLetter
	)
	for _, r := range recs {
		ev, err := feedback.DecodeStoredWithoutFeatures(r.Value)
		if err != nil || ev.EventID == "" {
			invalid++
			continue
		}
		if reason := c.unknown(&ev); reason != "" {
			dead = append(dead, eventlog.DeadLetter{Source: "counters", Index: -1, Field: "item_id", Reason: reason,
				Payload: string(r.Value), Key: string(r.Key)})
			continue
		}
		ws = append(ws, &work{rec: r, ev: ev, mark: strconv.Itoa(int(r.Partition)) + ":" + strconv.FormatInt(r.Offset, 10)})
	}
	if len(dead) > 0 {
		if err := c.deadLetter(ctx, dead); err != nil {
			return err
		}
	}
	// Marks: new, a re-read of the record that set it, or a duplicate.
	ttl := c.ccfg.DedupeWindow
	if err := c.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, w := range ws {
			w.set = pipe.SetNX(ctx, realtime.SeenKey(p, w.ev.EventID), w.mark, ttl)
		}
	}); err != nil {
		return fmt.Errorf("update counters: dedupe marks: %w", err)
	}
	var again []*work
	for _, w := range ws {
		if !w.set.Val() {
			again = append(again, w)
		}
	}
	if len(again) > 0 {
		if err := c.pipelined(ctx, func(pipe redis.Pipeliner) {
			for _, w := range again {
				w.get = pipe.Get(ctx, realtime.SeenKey(p, w.ev.EventID))
			}
		}); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("update counters: dedupe marks: %w", err)
		}
	}
	var apply []*work
	var dups int64
	for _, w := range ws {
		if w.get != nil && w.get.Val() != w.mark {
			dups++
			continue
		}
		apply = append(apply, w)
	}
	hl := c.ccfg.HalfLife.Milliseconds()
	itemTTL := max(10*hl, (24 * time.Hour).Milliseconds())
	if err := c.pipelined(ctx, func(pipe redis.Pipeliner) { c.queue(ctx, pipe, apply, hl, itemTTL) }); err != nil {
		return fmt.Errorf("update counters: %w", err)
	}
	// Counted: a new event, or a re-read that completed what a crash cut
	// short. A re-read that found everything applied counts as neither.
	var counted, rereads int64
	for _, w := range apply {
		changed := w.set.Val()
		for _, cmd := range w.cmds {
			n, _ := cmd.Int64()
			changed = changed || n == 1
		}
		for _, g := range w.groups {
			r, _ := g.cmd.Text()
			changed = changed || g.at < len(r) && r[g.at] == '1'
		}
		if changed {
			counted++
		} else {
			rereads++
		}
	}
	c.mu.Lock()
	c.counted += counted
	c.dups += dups
	c.mu.Unlock()
	c.events.WithLabelValues(c.ccfg.Group, "counted").Add(float64(counted))
	c.events.WithLabelValues(c.ccfg.Group, "duplicate").Add(float64(dups))
	c.events.WithLabelValues(c.ccfg.Group, "reread").Add(float64(rereads))
	c.events.WithLabelValues(c.ccfg.Group, "invalid").Add(float64(invalid))
	c.events.WithLabelValues(c.ccfg.Group, "unknown_item").Add(float64(len(dead)))
	return nil
}

// queue adds the scripts of ws to pipe: one item script per item touched,
// its groups in record order, and for actions the user's history. Dwell
// events are remembered (marked) but change nothing: no feature reads them
// yet.
func (c *Updater) queue(ctx context.Context, pipe redis.Pipeliner, ws []*work, hl, itemTTL int64) {
	p := c.ccfg.KeyPrefix
	type item struct {
		key  string
		args []any
		ws   []*work // the record of each group
	}
	var items []*item
	byKey := map[string]*item{}
	add := func(w *work, id string, field int, t int64, part string) {
		key := realtime.ItemKey(p, id)
		it := byKey[key]
		if it == nil {
			it = &item{key: key, args: []any{hl, itemTTL}}
			byKey[key] = it
			items = append(items, it)
		}
		it.args = append(it.args, field, t, part, w.rec.Offset)
		it.ws = append(it.ws, w)
	}
	for _, w := range ws {
		ev := &w.ev
		w.cmds, w.groups = w.cmds[:0], w.groups[:0] // a retried pipeline queues anew
		part := strconv.Itoa(int(w.rec.Partition))
		t := ev.Timestamp.UnixMilli()
		switch ev.Type {
		case feedback.TypeImpression:
			for _, it := range ev.Items {
				if c.known == nil || c.known(it.ItemID) {
					add(w, it.ItemID, 1, t, part)
				}
			}
		case feedback.TypeClick:
			add(w, ev.ItemID, 2, t, part)
		}
		switch ev.Type {
		case feedback.TypeClick, feedback.TypeAddToCart, feedback.TypePurchase:
			if ev.UserID != "" {
				w.cmds = append(w.cmds, userScript.EvalSha(ctx, pipe, []string{realtime.UserKey(p, ev.UserID), realtime.UserOffsetKey(p, ev.UserID)},
					ev.ItemID, c.ccfg.HistoryLength, c.ccfg.HistoryTTL.Milliseconds(), part, w.rec.Offset))
			}
		}
	}
	for _, it := range items {
		cmd := itemScript.EvalSha(ctx, pipe, []string{it.key}, it.args...)
		for at, w := range it.ws {
			w.groups = append(w.groups, group{cmd: cmd, at: at})
		}
	}
}

// pipelined runs fill's commands in one pipeline. The scripts go by SHA;
// when a server does not know them (a fresh or restarted Redis) they are
// loaded and the pipeline runs again, which the offsets make harmless.
func (c *Updater) pipelined(ctx context.Context, fill func(redis.Pipeliner)) error {
	for attempt := 0; ; attempt++ {
		pipe := c.rdb.Pipeline()
		fill(pipe)
		if pipe.Len() == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		if err == nil || attempt > 0 || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return err
		}
		for _, s := range []*redis.Script{itemScript, userScript} {
			if err := s.Load(ctx, c.rdb).Err(); err != nil {
				return err
			}
		}
	}
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
