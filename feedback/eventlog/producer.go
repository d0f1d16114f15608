package eventlog

import (
	"context"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Record headers every event record carries, so consumers can route or skip
// records without parsing the JSON value.
const (
	HeaderSchemaVersion = "schema_version"
	HeaderEventType     = "event_type"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("feedback producer closed")

// Producer publishes events to the events topic. Records are keyed by user
// id, so one user's events stay ordered in one partition, which the training
// job's point-in-time join relies on. The client is idempotent (kgo's
// default) and waits for all in-sync replicas, so an acknowledged event is
// neither lost on a leader change nor duplicated by a retry.
//
// A Producer is safe for concurrent use.
type Producer struct {
	cl     *kgo.Client
	cfg    Config
	logger *slog.Logger
	m      producerMetrics

	// mu makes Close wait for in-flight Publish calls and keeps new ones
	// from reaching a flushed or closed client.
	mu     sync.RWMutex
	closed bool
	// asyncCtx bounds records published by PublishAsync; Close cancels it
	// after the final flush.
	asyncCtx    context.Context
	asyncCancel context.CancelFunc
}

type producerMetrics struct {
	events         *prometheus.CounterVec
	produceSeconds *prometheus.HistogramVec
}

// NewProducer returns a producer for cfg. It does not connect: the first
// Publish, Ping or EnsureTopic does. reg may be nil to skip metrics
// registration (tests).
func NewProducer(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("feedback config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	m := producerMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_feedback_events_total",
			Help: "Feedback events handed to the producer, by type and result (ok, error, invalid, dropped).",
		}, []string{"type", "result"}),
		produceSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "recsys_feedback_produce_seconds",
			Help:    "Time from handing an event to the producer until the broker acknowledged it, by mode (sync, async).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"mode"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.produceSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register feedback metrics: %w", err)
			}
		}
	}
	cl, err := cfg.NewClient(
		kgo.ClientID(cfg.ClientID),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Without a delivery timeout an unreachable cluster would keep
		// asynchronous impressions buffered (and retried) forever.
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout),
		kgo.WithLogger(kgoLogger{logger.With("component", "kafka-producer")}),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Producer{cl: cl, cfg: cfg, logger: logger, m: m, asyncCtx: ctx, asyncCancel: cancel}, nil
}

// Topic returns the topic events are written to.
func (p *Producer) Topic() string { return p.cfg.Topic }

// EnsureTopic creates the topic when it does not exist (with the
// durability settings of Config), so the service also works against
// clusters where automatic topic creation is off (the default for
// production clusters and for the embedded broker).
func (p *Producer) EnsureTopic(ctx context.Context) error {
	return ensureTopic(ctx, p.cl, p.cfg, p.cfg.Topic)
}

// Ping reports whether a broker answers, for the readiness probe.
func (p *Producer) Ping(ctx context.Context) error {
	if err := p.cl.Ping(ctx); err != nil {
		return fmt.Errorf("ping kafka: %w", err)
	}
	return nil
}

// Publish writes one event and returns once the broker acknowledged it (or
// after ProduceTimeout), so the HTTP layer answers 202 only for events that
// are durable. An event without EventID gets one. An invalid event is
// refused with a *feedback.FieldError; the ingestion time window is not re-checked
// here because feedback.Decode or Validate already did.
func (p *Producer) Publish(ctx context.Context, ev feedback.Event) error {
	rec, err := p.record(&ev)
	if err != nil {
		p.m.events.WithLabelValues(typeLabel(ev.Type), "invalid").Inc()
		return fmt.Errorf("publish event: %w", err)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.m.events.WithLabelValues(ev.Type, "dropped").Inc()
		return fmt.Errorf("publish event %s: %w", ev.EventID, ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	err = p.cl.ProduceSync(ctx, rec).FirstErr()
	p.m.produceSeconds.WithLabelValues("sync").Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.events.WithLabelValues(ev.Type, "error").Inc()
		return fmt.Errorf("publish event %s: %w", ev.EventID, err)
	}
	p.m.events.WithLabelValues(ev.Type, "ok").Inc()
	return nil
}

// PublishAsync hands an event to the producer without waiting, for the
// impressions written on the response path. It never blocks: when the
// client's buffer is full or the producer is closed the event is dropped.
// Failures are counted in recsys_feedback_events_total and logged, because
// the caller has already answered its request.
func (p *Producer) PublishAsync(ev feedback.Event) { p.publishAsync(ev, nil) }

// publishAsync is PublishAsync; when fallback is set, a record the broker
// does not take is handed to it instead of being dropped: one that fails,
// or one still unacknowledged after ProduceTimeout (an idempotent client
// cannot give up on a batch that may be on the broker, so it could wait
// for the whole outage). The second case may deliver the record twice;
// consumers drop duplicates by event id.
func (p *Producer) publishAsync(ev feedback.Event, fallback func(*kgo.Record)) {
	rec, err := p.record(&ev)
	if err != nil {
		p.m.events.WithLabelValues(typeLabel(ev.Type), "invalid").Inc()
		p.logger.Warn("feedback event refused", "type", typeLabel(ev.Type), "error", err)
		return
	}
	// TryRLock fails only while Close holds or waits for the lock; waiting
	// would block the response for up to the flush timeout.
	if !p.mu.TryRLock() {
		p.m.events.WithLabelValues(ev.Type, "dropped").Inc()
		return
	}
	defer p.mu.RUnlock()
	if p.closed {
		p.m.events.WithLabelValues(ev.Type, "dropped").Inc()
		return
	}
	start := time.Now()
	typ := ev.Type
	var (
		handed atomic.Bool // fallback called
		timer  *time.Timer
	)
	if fallback != nil {
		// A copy: the client owns rec while producing it.
		cp := &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: rec.Headers}
		give := fallback
		hand := func() {
			if handed.CompareAndSwap(false, true) {
				give(cp)
			}
		}
		fallback = func(*kgo.Record) { hand() }
		timer = time.AfterFunc(p.cfg.ProduceTimeout, hand)
	}
	p.cl.TryProduce(p.asyncCtx, rec, func(r *kgo.Record, err error) {
		p.m.produceSeconds.WithLabelValues("async").Observe(time.Since(start).Seconds())
		if timer != nil {
			timer.Stop()
		}
		switch {
		case err == nil:
			p.m.events.WithLabelValues(typ, "ok").Inc()
		case fallback != nil:
			fallback(r)
		case errors.Is(err, kgo.ErrMaxBuffered):
			p.m.events.WithLabelValues(typ, "dropped").Inc()
			p.logger.Warn("feedback event dropped: producer buffer full", "type", typ)
		default:
			p.m.events.WithLabelValues(typ, "error").Inc()
			p.logger.Warn("feedback event not delivered", "type", typ, "error", err)
		}
	})
}

// produce hands recs to the client and waits for the broker's
// acknowledgements until ctx ends. It returns the records not acknowledged
// (failed, or still pending when ctx ended) with the first error.
//
// It does not use ProduceSync: an idempotent client cannot fail a batch
// that may already be on the broker, so while the broker is unreachable
// ProduceSync would wait for its return however short ctx is. A record
// still pending here is delivered when the broker returns, as well as by
// whatever the caller does with it (the spool): consumers dedupe by event id.
func (p *Producer) produce(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
	type result struct {
		i   int
		err error
	}
	done := make(chan result, len(recs))
	start := time.Now()
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return recs, ErrClosed
	}
	for i, r := range recs {
		// TryProduce fails at once with ErrMaxBuffered rather than block
		// when the client's buffer is full (a long outage).
		p.cl.TryProduce(p.asyncCtx, r, func(_ *kgo.Record, err error) { done <- result{i, err} })
	}
	p.mu.RUnlock()
	acked := make([]bool, len(recs))
	var first error
	for n := 0; n < len(recs); n++ {
		select {
		case res := <-done:
			if res.err != nil {
				if first == nil {
					first = res.err
				}
				continue
			}
			acked[res.i] = true
		case <-ctx.Done():
			if first == nil {
				first = ctx.Err()
			}
			n = len(recs)
		}
	}
	p.m.produceSeconds.WithLabelValues("sync").Observe(time.Since(start).Seconds())
	var failed []*kgo.Record
	for i, ok := range acked {
		if !ok {
			failed = append(failed, recs[i])
		}
	}
	if len(failed) > 0 {
		return failed, fmt.Errorf("produce: %d of %d records not acknowledged: %w", len(failed), len(recs), first)
	}
	return nil, nil
}

// Flush waits until every buffered record has been acknowledged or failed.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	return nil
}

// Close waits for in-flight Publish calls, flushes buffered asynchronous
// events for at most ProduceTimeout and closes the client. Events still
// buffered after that are failed and counted as errors.
func (p *Producer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ProduceTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.asyncCancel()
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("close producer: flush: %w", err)
	}
	return nil
}

// record validates ev, assigns an id when missing and builds its record.
func (p *Producer) record(ev *feedback.Event) (*kgo.Record, error) {
	if err := ev.ValidateStored(); err != nil {
		return nil, err
	}
	ev.EnsureID()
	// goccy/go-json: every search and recommendation writes an
	// impression (the same bytes as encoding/json, half the time).
	value, err := gojson.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return &kgo.Record{
		Topic: p.cfg.Topic,
		Key:   []byte(ev.UserID),
		Value: value,
		// The record timestamp stays the produce time (kgo fills it in):
		// kgo measures RecordDeliveryTimeout from it, so an event time from
		// a client's past would time the record out before it was sent.
		// The event time is in the value.
		Headers: []kgo.RecordHeader{
			{Key: HeaderSchemaVersion, Value: []byte(strconv.Itoa(ev.SchemaVersion))},
			{Key: HeaderEventType, Value: []byte(ev.Type)},
		},
	}, nil
}

// typeLabel keeps client-chosen strings out of metric labels.
func typeLabel(t string) string {
	if feedback.KnownType(t) {
		return t
	}
	return "unknown"
}
