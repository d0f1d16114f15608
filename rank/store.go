package rank

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Value format of one stored row: a 1-byte format version, a little-endian
// uint16 feature count, then count little-endian float32s. The count lets a
// reader detect a row written under a different feature list instead of
// mis-reading it; the version leaves room to change the layout later.
const (
	valueFormat  = 1
	headerLen    = 3
	maxRowLen    = math.MaxUint16
	writeChunk   = 1000 // SETs per pipeline round trip when writing
	scanCount    = 1000 // SCAN hint and UNLINK batch when deleting
	maxVersionLn = 128
)

// Reasons a fetched row falls back to defaults (the missing metric's label).
const (
	missingAbsent   = "absent"
	missingMismatch = "mismatch"
)

// ErrVersion means a bundle version is not usable as part of a key.
var ErrVersion = errors.New("invalid feature version")

// Store reads and writes item feature rows in Redis, one key per item per
// bundle version. It holds no per-version state, so one Store serves every
// bundle generation; it is safe for concurrent use.
type Store struct {
	client       redis.UniversalClient
	prefix       string
	fetchTimeout time.Duration
	rtPrefix     string // the counter updater's key prefix (UseRealtime)
	rtHalfLife   time.Duration

	fetchSeconds prometheus.Histogram
	missing      *prometheus.CounterVec
}

// NewStore builds a Store over client with cfg's key prefix and fetch
// timeout. reg may be nil; registering twice on one registry reuses the
// metrics already there, so a reload can build a new Store.
func NewStore(client redis.UniversalClient, cfg Config, reg prometheus.Registerer) (*Store, error) {
	if client == nil {
		return nil, errors.New("new feature store: nil redis client")
	}
	if cfg.KeyPrefix == "" {
		return nil, errors.New("new feature store: key_prefix: must not be empty")
	}
	s := &Store{
		client:       client,
		prefix:       cfg.KeyPrefix,
		fetchTimeout: cfg.FetchTimeout,
		fetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "recsys_features_fetch_seconds",
			Help:    "Duration of one feature-store fetch (one MGET round trip).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25},
		}),
		missing: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_features_missing_total",
			Help: "Item feature rows served from defaults, by reason (absent, mismatch).",
		}, []string{"reason"}),
	}
	if reg != nil {
		var err error
		if s.fetchSeconds, err = register(reg, s.fetchSeconds); err != nil {
			return nil, fmt.Errorf("new feature store: %w", err)
		}
		if s.missing, err = register(reg, s.missing); err != nil {
			return nil, fmt.Errorf("new feature store: %w", err)
		}
	}
	return s, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// checkVersion keeps versions to characters that are safe in a key and in a
// SCAN pattern, so one version's keys can never match another's pattern.
func checkVersion(v string) error {
	if v == "" || len(v) > maxVersionLn {
		return fmt.Errorf("%w %q: must be 1-%d characters", ErrVersion, v, maxVersionLn)
	}
	for _, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("%w %q: only letters, digits, '-', '_' and '.' allowed", ErrVersion, v)
		}
	}
	return nil
}

func (s *Store) versionPrefix(version string) string {
	return s.prefix + ":" + version + ":"
}

func (s *Store) itemKey(version, id string) string {
	return s.prefix + ":" + version + ":i:" + id
}

func (s *Store) readyKey(version string) string {
	return s.prefix + ":" + version + ":ready"
}

// appendRow encodes one row after dst.
func appendRow(dst []byte, row []float32) []byte {
	dst = append(dst, valueFormat)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(row)))
	for _, v := range row {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	return dst
}

// decodeRow fills dst (len f) from an encoded value and reports whether the
// value is well formed with exactly len(dst) features; on false dst is left
// untouched.
func decodeRow(dst []float32, val string) bool {
	if len(val) < headerLen || val[0] != valueFormat {
		return false
	}
	n := int(val[1]) | int(val[2])<<8
	if n != len(dst) || len(val) != headerLen+4*n {
		return false
	}
	for j := range dst {
		o := headerLen + 4*j
		dst[j] = math.Float32frombits(uint32(val[o]) | uint32(val[o+1])<<8 | uint32(val[o+2])<<16 | uint32(val[o+3])<<24)
	}
	return true
}

// WriteItems stores rows[i] for ids[i] under version, pipelined in chunks so
// a large catalog neither takes one round trip per item nor one giant
// request. Call MarkReady after the last write.
func (s *Store) WriteItems(ctx context.Context, version string, ids []string, rows [][]float32) error {
	if err := checkVersion(version); err != nil {
		return fmt.Errorf("write features: %w", err)
	}
	if len(ids) != len(rows) {
		return fmt.Errorf("write features %s: %d ids but %d rows", version, len(ids), len(rows))
	}
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("write features %s: ids[%d]: empty id", version, i)
		}
		if len(rows[i]) > maxRowLen {
			return fmt.Errorf("write features %s: rows[%d]: %d features, at most %d", version, i, len(rows[i]), maxRowLen)
		}
		if len(rows[i]) != len(rows[0]) {
			return fmt.Errorf("write features %s: rows[%d]: %d features, rows[0] has %d", version, i, len(rows[i]), len(rows[0]))
		}
	}
	var buf []byte
	for start := 0; start < len(ids); start += writeChunk {
		end := min(start+writeChunk, len(ids))
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				// go-redis may keep the argument until Exec, so each value
				// gets its own bytes.
				buf = appendRow(buf[:0], rows[i])
				p.Set(ctx, s.itemKey(version, ids[i]), string(buf), 0)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("write features %s: items %d-%d: %w", version, start, end-1, err)
		}
	}
	return nil
}

// MarkReady records that version is completely written. Readers check Ready
// before pinning a version, so a build that dies half-way is never served.
func (s *Store) MarkReady(ctx context.Context, version string) error {
	if err := checkVersion(version); err != nil {
		return fmt.Errorf("mark features ready: %w", err)
	}
	stamp := time.Now().UTC().Format(time.RFC3339)
	if err := s.client.Set(ctx, s.readyKey(version), stamp, 0).Err(); err != nil {
		return fmt.Errorf("mark features ready %s: %w", version, err)
	}
	return nil
}

// Ready reports whether MarkReady completed for version.
func (s *Store) Ready(ctx context.Context, version string) (bool, error) {
	if err := checkVersion(version); err != nil {
		return false, fmt.Errorf("check features ready: %w", err)
	}
	n, err := s.client.Exists(ctx, s.readyKey(version)).Result()
	if err != nil {
		return false, fmt.Errorf("check features ready %s: %w", version, err)
	}
	return n == 1, nil
}

// Fetch fills dst (row-major, len(ids) x len(defaults)) with the rows of ids
// under version in one MGET round trip. An absent row, or one whose feature
// count differs from len(defaults), gets defaults; missing counts them. On
// error dst holds defaults throughout so a caller that degrades can still use
// it. The configured fetch timeout applies on top of ctx's deadline.
//
// On a Redis Cluster the keys are read one GET each in a pipeline, which
// go-redis sends to each node in one round trip: a cluster refuses an MGET
// whose keys live in different hash slots.
func (s *Store) Fetch(ctx context.Context, version string, ids []string, dst []float32, defaults []float32) (missing int, err error) {
	f := len(defaults)
	if len(dst) != len(ids)*f {
		return 0, fmt.Errorf("fetch features: dst has %d values, want %d (%d ids x %d features)", len(dst), len(ids)*f, len(ids), f)
	}
	for i := range ids {
		copy(dst[i*f:(i+1)*f], defaults)
	}
	if err := checkVersion(version); err != nil {
		return len(ids), fmt.Errorf("fetch features: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if s.fetchTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.fetchTimeout)
		defer cancel()
	}
	// All keys are substrings of one string: one allocation instead of one
	// per item on the hottest path of a request.
	kp := s.versionPrefix(version) + "i:"
	size := 0
	for _, id := range ids {
		size += len(kp) + len(id)
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, id := range ids {
		sb.WriteString(kp)
		sb.WriteString(id)
	}
	all := sb.String()
	keys := make([]string, len(ids))
	off := 0
	for i, id := range ids {
		end := off + len(kp) + len(id)
		keys[i] = all[off:end]
		off = end
	}
	start := time.Now()
	pipe := s.client.Pipeline()
	read := mget(ctx, s.client, pipe, keys)
	_, err = pipe.Exec(ctx)
	var vals []any
	if err == nil || errors.Is(err, redis.Nil) {
		vals, err = read()
	}
	s.fetchSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.missing.WithLabelValues(missingAbsent).Add(float64(len(ids)))
		return len(ids), fmt.Errorf("fetch features %s: %w", version, err)
	}
	if len(vals) != len(ids) {
		return len(ids), fmt.Errorf("fetch features %s: MGET returned %d values for %d keys", version, len(vals), len(ids))
	}
	var absent, mismatch int
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			absent++
			continue
		}
		if !decodeRow(dst[i*f:(i+1)*f], str) {
			mismatch++
		}
	}
	if absent > 0 {
		s.missing.WithLabelValues(missingAbsent).Add(float64(absent))
	}
	if mismatch > 0 {
		s.missing.WithLabelValues(missingMismatch).Add(float64(mismatch))
	}
	return absent + mismatch, nil
}

// DeleteVersion removes every key of version, the ready marker first so no
// reader pins a version that is being torn down. Retired versions must be
// deleted or Redis grows by one catalog per build.
func (s *Store) DeleteVersion(ctx context.Context, version string) error {
	if err := checkVersion(version); err != nil {
		return fmt.Errorf("delete features: %w", err)
	}
	if err := s.client.Unlink(ctx, s.readyKey(version)).Err(); err != nil {
		return fmt.Errorf("delete features %s: ready marker: %w", version, err)
	}
	pattern := globEscape(s.versionPrefix(version)) + "*"
	// A Cluster keeps keys on every master, so each one is scanned; on a
	// single server ForEachMaster is not available and the client is used.
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return deleteMatching(ctx, c, pattern, version)
		})
	}
	return deleteMatching(ctx, s.client, pattern, version)
}

// deleteMatching unlinks keys one per command (pipelined) because a Cluster
// refuses a multi-key UNLINK whose keys hash to different slots.
func deleteMatching(ctx context.Context, c redis.Cmdable, pattern, version string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, scanCount).Result()
		if err != nil {
			return fmt.Errorf("delete features %s: scan: %w", version, err)
		}
		if len(keys) > 0 {
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("delete features %s: unlink: %w", version, err)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// globEscape quotes the SCAN MATCH metacharacters of a literal prefix.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping feature store: %w", err)
	}
	return nil
}

// mget queues a read of keys on pipe and returns the values once pipe ran:
// one MGET on a single server; on a Redis Cluster, which refuses an MGET
// across hash slots, one GET per key (the pipeline groups them by node).
// An absent key reads as nil, as MGET reports it.
func mget(ctx context.Context, client redis.UniversalClient, pipe redis.Pipeliner, keys []string) func() ([]any, error) {
	if _, ok := client.(*redis.ClusterClient); !ok {
		cmd := pipe.MGet(ctx, keys...)
		return func() ([]any, error) { return cmd.Result() }
	}
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	return func() ([]any, error) {
		out := make([]any, len(cmds))
		for i, c := range cmds {
			v, err := c.Result()
			switch {
			case err == nil:
				out[i] = v
			case errors.Is(err, redis.Nil):
			default:
				return nil, err
			}
		}
		return out, nil
	}
}
