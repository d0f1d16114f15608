package eventlog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/internal/backoff"
)

// DefaultDeadLetterTopic is where events that fail validation after they
// were accepted go, with the reason.
const DefaultDeadLetterTopic = "recsys.events.dlq"

// Header on dead-letter records, for routing without parsing the value.
const HeaderDeadLetterReason = "dead_letter_reason"

// drainBatch is how many spooled entries one produce call delivers.
const drainBatch = 2000

// DeadLetter is an event refused after acceptance: an invalid member of a
// batch, or a record that fails validation on replay. It is the value of a
// dead-letter record.
type DeadLetter struct {
	// Source says where it was refused: "batch" or "replay".
	Source string `json:"source"`
	// Index is the event's position in its batch (batch only).
	Index int `json:"index"`
	// Field and Reason are the validation error.
	Field  string `json:"field"`
	Reason string `json:"reason"`
	// Payload is the event as received, as text: it may not be valid JSON.
	Payload    string    `json:"payload"`
	ReceivedAt time.Time `json:"received_at"`
	// Key is the record key: the user id when it could be read, so dead
	// letters of one user stay together.
	Key string `json:"-"`
}

// FullError is returned when the spool cannot take more events. It wraps
// ErrSpoolFull and says how long the client should wait.
type FullError struct{ After time.Duration }

func (e *FullError) Error() string             { return "feedback spool full, retry after " + e.After.String() }
func (e *FullError) Unwrap() error             { return ErrSpoolFull }
func (e *FullError) RetryAfter() time.Duration { return e.After }

// Outcome says how an accepted event was made durable.
type Outcome int

const (
	// Produced: the broker acknowledged it (acks=all).
	Produced Outcome = iota
	// Spooled: Kafka was unreachable and it is fsynced in the spool, to be
	// delivered in order when the broker returns.
	Spooled
)

func (o Outcome) String() string {
	if o == Spooled {
		return "spooled"
	}
	return "produced"
}

// Sink is the no-loss front of the event log. Publish and PublishBatch
// return nil only when the events are durable: acknowledged by the broker,
// or, while the broker is unreachable, fsynced in the spool. Once anything
// is spooled, new events go to the spool too (behind the older ones) until
// Run has drained it, so the spool is delivered in order.
type Sink struct {
	p        *Producer
	spool    *Spool // nil: no spool, Kafka failures are returned
	dlqTopic string
	logger   *slog.Logger
	m        sinkMetrics

	// spooling routes new events to the spool behind older spooled ones.
	// switchMu orders the switch off against appends: an append holds it
	// shared from reading spooling until its entries are in the spool, and
	// the drainer turns spooling off only under the exclusive lock, with
	// the spool empty. So no event can reach Kafka directly while an
	// earlier one is still on its way into the spool.
	switchMu    sync.RWMutex
	spooling    atomic.Bool
	topicsReady atomic.Bool
	kick        chan struct{}
	durMu       sync.Mutex
	durability  []Durability // what EnsureTopics found
}

type sinkMetrics struct {
	accepted, produced *prometheus.CounterVec
	spooled, dead      prometheus.Counter
}

// NewSink returns a sink publishing with p, spooling to spool (nil disables
// the fallback). Run must be running for spooled events to be delivered.
func NewSink(p *Producer, spool *Spool, logger *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sink{p: p, spool: spool, dlqTopic: p.cfg.DeadLetterTopic, logger: logger, kick: make(chan struct{}, 1)}
	s.m = sinkMetrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_feedback_accepted_total",
			Help: "Feedback events acknowledged to clients (produced or spooled), by type.",
		}, []string{"type"}),
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_feedback_produced_total",
			Help: "Records acknowledged by the broker, by path (direct, spool) and topic kind (events, dead_letters).",
		}, []string{"path", "kind"}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recsys_feedback_spooled_total",
			Help: "Records written to the on-disk spool because Kafka was unreachable.",
		}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recsys_feedback_dead_letters_total",
			Help: "Events refused after acceptance and sent to the dead-letter topic.",
		}),
	}
	cs := []prometheus.Collector{s.m.accepted, s.m.produced, s.m.spooled, s.m.dead}
	if spool != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recsys_feedback_spool_entries", Help: "Records in the spool waiting for Kafka."},
				func() float64 { return float64(spool.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recsys_feedback_spool_bytes", Help: "Size of the spool's segment files."},
				func() float64 { return float64(spool.Bytes()) }))
		// Entries left by a previous run go first.
		s.spooling.Store(spool.Len() > 0)
	}
	if reg != nil {
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register feedback sink metrics: %w", err)
			}
		}
	}
	return s, nil
}

// EnsureTopics creates the events and dead-letter topics when missing. A
// server with a spool may start while Kafka is down: then Run creates the
// topics before it drains.
func (s *Sink) EnsureTopics(ctx context.Context) error {
	if err := s.p.EnsureTopic(ctx); err != nil {
		return err
	}
	if err := ensureTopic(ctx, s.p.cl, s.p.cfg, s.dlqTopic); err != nil {
		return err
	}
	if err := s.checkDurability(ctx); err != nil {
		return err
	}
	s.topicsReady.Store(true)
	return nil
}

// HasSpool reports whether events are spooled while Kafka is unreachable.
func (s *Sink) HasSpool() bool { return s.spool != nil }

// Publish makes one valid event durable; see Sink. It satisfies the API's
// publisher. The error wraps a *feedback.FieldError for an invalid event and a
// *FullError when the spool is full.
func (s *Sink) Publish(ctx context.Context, ev feedback.Event) error {
	_, err := s.PublishBatch(ctx, []feedback.Event{ev}, nil)
	return err
}

// PublishAsync hands a server-made event (an impression) to Kafka without
// waiting for the broker. With a spool, a record the broker does not take
// (unreachable past the produce timeout, buffer full), and every record
// while the sink is spooling, goes to the spool, so the impressions of an
// outage still reach training. Without a spool, or with a full one, it is
// dropped and counted. It satisfies the engine's impression sink.
func (s *Sink) PublishAsync(ev feedback.Event) {
	if s.spool == nil {
		s.p.PublishAsync(ev)
		return
	}
	s.switchMu.RLock()
	if s.spooling.Load() {
		defer s.switchMu.RUnlock()
		rec, err := s.p.record(&ev)
		if err != nil {
			s.p.m.events.WithLabelValues(typeLabel(ev.Type), "invalid").Inc()
			return
		}
		s.spoolRecord(rec)
		return
	}
	s.switchMu.RUnlock()
	s.p.publishAsync(ev, s.spoolAsync)
}

// spoolAsync spools one record a caller is not waiting for, after the
// broker did not take it.
func (s *Sink) spoolAsync(rec *kgo.Record) {
	s.switchMu.RLock()
	defer s.switchMu.RUnlock()
	s.spooling.Store(true)
	s.spoolRecord(rec)
}

// spoolRecord spools rec; called with switchMu held shared.
func (s *Sink) spoolRecord(rec *kgo.Record) {
	typ := ""
	for _, h := range rec.Headers {
		if h.Key == HeaderEventType {
			typ = string(h.Value)
		}
	}
	if err := s.toSpool([]*kgo.Record{rec}); err != nil {
		s.p.m.events.WithLabelValues(typ, "dropped").Inc()
		s.logger.Warn("feedback event dropped: the spool refused it", "type", typ, "error", err)
		return
	}
	s.p.m.events.WithLabelValues(typ, "spooled").Inc()
}

// PublishBatch makes evs and dead durable together: on nil error every one
// of them is produced or spooled; on error the caller must treat none as
// accepted (some may still be delivered, which the event id dedupes).
func (s *Sink) PublishBatch(ctx context.Context, evs []feedback.Event, dead []DeadLetter) (Outcome, error) {
	recs := make([]*kgo.Record, 0, len(evs)+len(dead))
	for i := range evs {
		rec, err := s.p.record(&evs[i])
		if err != nil {
			return 0, fmt.Errorf("publish event %d: %w", i, err)
		}
		recs = append(recs, rec)
	}
	for i := range dead {
		rec, err := s.deadRecord(&dead[i])
		if err != nil {
			return 0, err
		}
		recs = append(recs, rec)
	}
	out, err := s.accept(ctx, recs)
	if err != nil {
		return 0, err
	}
	for i := range evs {
		s.m.accepted.WithLabelValues(evs[i].Type).Inc()
	}
	s.m.dead.Add(float64(len(dead)))
	return out, nil
}

func (s *Sink) accept(ctx context.Context, recs []*kgo.Record) (Outcome, error) {
	wait := s.p.cfg.ProduceTimeout
	if s.spool != nil {
		s.switchMu.RLock()
		if s.spooling.Load() {
			defer s.switchMu.RUnlock()
			return Spooled, s.toSpool(recs)
		}
		s.switchMu.RUnlock()
		wait = s.p.cfg.SpoolAfter
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	failed, err := s.p.produce(pctx, recs)
	cancel()
	s.countProduced("direct", recs, failed)
	if err == nil {
		return Produced, nil
	}
	if s.spool == nil || ctx.Err() != nil {
		return 0, err
	}
	// Not acknowledged within spool_after: spool what the broker did not
	// confirm. A record the client still holds may be delivered as well
	// when the broker answers; consumers drop the duplicate by event id.
	if !s.spooling.Load() {
		s.logger.Warn("kafka did not acknowledge within kafka.spool_after, spooling feedback events to disk",
			"spool_after", s.p.cfg.SpoolAfter, "error", err)
	}
	s.switchMu.RLock()
	defer s.switchMu.RUnlock()
	s.spooling.Store(true)
	return Spooled, s.toSpool(failed)
}

func (s *Sink) toSpool(recs []*kgo.Record) error {
	entries := make([][]byte, len(recs))
	for i, r := range recs {
		entries[i] = encodeEntry(r, r.Topic == s.dlqTopic)
	}
	if err := s.spool.Append(entries); err != nil {
		if errors.Is(err, ErrSpoolFull) {
			return &FullError{After: s.spool.RetryAfter()}
		}
		return err
	}
	s.m.spooled.Add(float64(len(recs)))
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func (s *Sink) countProduced(path string, recs, failed []*kgo.Record) {
	var ev, dl int
	for _, r := range recs {
		if r.Topic == s.dlqTopic {
			dl++
		} else {
			ev++
		}
	}
	for _, r := range failed {
		if r.Topic == s.dlqTopic {
			dl--
		} else {
			ev--
		}
	}
	s.m.produced.WithLabelValues(path, "events").Add(float64(ev))
	s.m.produced.WithLabelValues(path, "dead_letters").Add(float64(dl))
}

// Run drains the spool to Kafka in order until ctx ends, retrying with
// backoff while the broker is unreachable. Without a spool it returns at once.
func (s *Sink) Run(ctx context.Context) error {
	if s.spool == nil {
		return nil
	}
	pause := 100 * time.Millisecond
	for {
		n, err := s.drainOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.logger.Warn("feedback spool: kafka still unreachable", "pending", s.spool.Len(), "retry_in", pause, "error", err)
			if !backoff.Sleep(ctx, pause) {
				return nil
			}
			pause = min(2*pause, 5*time.Second)
		case n > 0:
			pause = 100 * time.Millisecond
		default:
			// Empty: stop routing new events to the spool, unless an
			// append got in first (see switchMu).
			s.switchMu.Lock()
			empty := s.spool.Len() == 0
			if empty {
				s.spooling.Store(false)
			}
			s.switchMu.Unlock()
			if !empty {
				continue
			}
			select {
			case <-ctx.Done():
				return nil
			case <-s.kick:
			case <-time.After(time.Second):
			}
		}
	}
}

// drainOnce delivers one batch from the head of the spool and commits it.
func (s *Sink) drainOnce(ctx context.Context) (int, error) {
	entries, err := s.spool.Peek(drainBatch)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	if !s.topicsReady.Load() {
		tctx, cancel := context.WithTimeout(ctx, s.p.cfg.ProduceTimeout)
		err := s.EnsureTopics(tctx)
		cancel()
		if err != nil {
			return 0, err
		}
	}
	recs := make([]*kgo.Record, len(entries))
	for i, e := range entries {
		if recs[i], err = s.decodeEntry(e); err != nil {
			return 0, err
		}
	}
	// No timeout of our own: records the client cannot fail yet are
	// delivered when the broker returns, and the others fail after
	// ProduceTimeout (kgo's delivery timeout), which ends the wait.
	failed, err := s.p.produce(ctx, recs)
	s.countProduced("spool", recs, failed)
	if err != nil {
		return 0, err
	}
	if err := s.spool.Commit(); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// Pending reports how many spooled records wait for Kafka.
func (s *Sink) Pending() int {
	if s.spool == nil {
		return 0
	}
	return s.spool.Len()
}

func (s *Sink) deadRecord(d *DeadLetter) (*kgo.Record, error) {
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = time.Now().UTC()
	}
	value, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode dead letter: %w", err)
	}
	return &kgo.Record{
		Topic: s.dlqTopic, Key: []byte(d.Key), Value: value,
		Headers: []kgo.RecordHeader{{Key: HeaderDeadLetterReason, Value: []byte(d.Field + ": " + d.Reason)}},
	}, nil
}

// A spool entry is: kind (0 event, 1 dead letter), then key and the one
// header value each as uvarint length and bytes, then the record value.
// Topic names are not stored, so a spool survives a topic rename in config.
func encodeEntry(r *kgo.Record, dead bool) []byte {
	hv := []byte{}
	for _, h := range r.Headers {
		if h.Key == HeaderEventType || h.Key == HeaderDeadLetterReason {
			hv = h.Value
		}
	}
	b := make([]byte, 0, 1+2*binary.MaxVarintLen32+len(r.Key)+len(hv)+len(r.Value))
	kind := byte(0)
	if dead {
		kind = 1
	}
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(r.Key)))
	b = append(b, r.Key...)
	b = binary.AppendUvarint(b, uint64(len(hv)))
	b = append(b, hv...)
	return append(b, r.Value...)
}

func (s *Sink) decodeEntry(b []byte) (*kgo.Record, error) {
	bad := errors.New("feedback spool: malformed entry")
	if len(b) < 1 || b[0] > 1 {
		return nil, bad
	}
	kind, rest := b[0], b[1:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return nil, false
		}
		v := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return v, true
	}
	key, ok1 := field()
	hv, ok2 := field()
	if !ok1 || !ok2 {
		return nil, bad
	}
	r := &kgo.Record{Key: key, Value: rest}
	if kind == 1 {
		r.Topic = s.dlqTopic
		r.Headers = []kgo.RecordHeader{{Key: HeaderDeadLetterReason, Value: hv}}
	} else {
		r.Topic = s.p.cfg.Topic
		r.Headers = []kgo.RecordHeader{
			{Key: HeaderSchemaVersion, Value: []byte(strconv.Itoa(feedback.SchemaVersion))},
			{Key: HeaderEventType, Value: hv},
		}
	}
	return r, nil
}
