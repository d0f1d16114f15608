package rank

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/recsys-dev/recsys/internal/realtime"
	"github.com/recsys-dev/recsys/internal/redisd"
)

// clientFactory returns a client to an empty Redis that lives until the test
// ends.
type clientFactory func(t testing.TB) redis.UniversalClient

func embeddedRedis(t testing.TB) redis.UniversalClient {
	s, err := redisd.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("start embedded redis: %v", err)
	}
	t.Cleanup(s.Close)
	c, err := NewRedisClient(RedisConfig{Addr: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func realRedis(t testing.TB) redis.UniversalClient {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := redisd.Exec(ctx)
	if errors.Is(err, redisd.ErrNoRedisServer) {
		t.Skip("skipping real-Redis run: redis-server not installed (apt-get install redis-server)")
	}
	if err != nil {
		t.Fatalf("exec redis-server: %v", err)
	}
	t.Cleanup(p.Close)
	c, err := NewRedisClient(RedisConfig{Addr: p.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// clusterRedis starts a real three-master Redis Cluster for the whole test
// (a cluster takes seconds to form) and hands out clients to it emptied
// first: a cluster has one database, and the suite expects an empty one.
func clusterRedis(t *testing.T) clientFactory {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := redisd.ExecCluster(ctx, 3)
	if errors.Is(err, redisd.ErrNoRedisServer) {
		t.Skip("skipping the Redis Cluster run: redis-server not installed (apt-get install redis-server)")
	}
	if err != nil {
		t.Fatalf("exec redis cluster: %v", err)
	}
	t.Cleanup(cl.Close)
	return func(t testing.TB) redis.UniversalClient {
		c, err := NewRedisClient(RedisConfig{Mode: RedisCluster, Addrs: cl.Addrs()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		err = c.(*redis.ClusterClient).ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
			return m.FlushAll(ctx).Err()
		})
		if err != nil {
			t.Fatalf("flush cluster: %v", err)
		}
		return c
	}
}

func TestStore_Embedded(t *testing.T)     { testStoreContract(t, embeddedRedis) }
func TestStore_RedisServer(t *testing.T)  { testStoreContract(t, realRedis) }
func TestStore_RedisCluster(t *testing.T) { testStoreContract(t, clusterRedis(t)) }

func testConfig() Config {
	c := DefaultConfig()
	c.KeyPrefix = "t"
	c.FetchTimeout = 5 * time.Second // generous: -race on 2 shared cores
	return c
}

func newTestStore(t testing.TB, c redis.UniversalClient, reg prometheus.Registerer) *Store {
	s, err := NewStore(c, testConfig(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// makeRows builds n rows of f features whose values encode (row, column), so
// any mix-up of rows or columns shows.
func makeRows(n, f int) ([]string, [][]float32) {
	ids := make([]string, n)
	rows := make([][]float32, n)
	for i := range n {
		ids[i] = fmt.Sprintf("item-%05d", i)
		rows[i] = make([]float32, f)
		for j := range f {
			rows[i][j] = float32(i) + float32(j)/10
		}
	}
	return ids, rows
}

// testStoreContract is the behaviour every Redis the store runs on must show.
func testStoreContract(t *testing.T, newClient clientFactory) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const f = 3
	defaults := []float32{-1, -2, -3}

	t.Run("write mark ready fetch round trip across chunks", func(t *testing.T) {
		s := newTestStore(t, newClient(t), nil)
		ids, rows := makeRows(writeChunk*2+37, f) // several pipeline chunks
		if ok, err := s.Ready(ctx, "v1"); err != nil || ok {
			t.Fatalf("Ready before MarkReady = %v, %v; want false, nil", ok, err)
		}
		if err := s.WriteItems(ctx, "v1", ids, rows); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Ready(ctx, "v1"); ok {
			t.Fatal("Ready true after writes but before MarkReady")
		}
		if err := s.MarkReady(ctx, "v1"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Ready(ctx, "v1"); err != nil || !ok {
			t.Fatalf("Ready after MarkReady = %v, %v", ok, err)
		}
		// Ask in a scrambled order with duplicates: dst follows ids.
		ask := []string{ids[2030], ids[0], ids[999], ids[1000], ids[0]}
		dst := make([]float32, len(ask)*f)
		missing, err := s.Fetch(ctx, "v1", ask, dst, defaults)
		if err != nil || missing != 0 {
			t.Fatalf("Fetch = %d, %v", missing, err)
		}
		for i, id := range ask {
			n := slices.Index(ids, id)
			if !slices.Equal(dst[i*f:(i+1)*f], rows[n]) {
				t.Fatalf("row %d (%s) = %v, want %v", i, id, dst[i*f:(i+1)*f], rows[n])
			}
		}
	})

	t.Run("missing and mismatched rows get defaults and are counted", func(t *testing.T) {
		c := newClient(t)
		reg := prometheus.NewRegistry()
		s := newTestStore(t, c, reg)
		ids, rows := makeRows(2, f)
		if err := s.WriteItems(ctx, "v1", ids, rows); err != nil {
			t.Fatal(err)
		}
		// A row written under an older, longer feature list and a value that
		// is not a feature row at all.
		if err := s.WriteItems(ctx, "v1", []string{"old"}, [][]float32{{1, 2, 3, 4}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "t:v1:i:junk", "\x01\x03\x00ab", 0).Err(); err != nil {
			t.Fatal(err)
		}
		ask := []string{ids[1], "nope", "old", "junk", ids[0]}
		dst := make([]float32, len(ask)*f)
		missing, err := s.Fetch(ctx, "v1", ask, dst, defaults)
		if err != nil {
			t.Fatal(err)
		}
		if missing != 3 {
			t.Fatalf("missing = %d, want 3", missing)
		}
		want := slices.Concat(rows[1], defaults, defaults, defaults, rows[0])
		if !slices.Equal(dst, want) {
			t.Fatalf("dst = %v, want %v", dst, want)
		}
		got := gather(t, reg)
		if v := got[`recsys_features_missing_total{reason="absent"}`]; v != 1 {
			t.Errorf("missing{absent} = %v, want 1", v)
		}
		if v := got[`recsys_features_missing_total{reason="mismatch"}`]; v != 2 {
			t.Errorf("missing{mismatch} = %v, want 2", v)
		}
		if v := got["recsys_features_fetch_seconds_count"]; v != 1 {
			t.Errorf("fetch_seconds count = %v, want 1", v)
		}
	})

	t.Run("versions are isolated and delete removes only one", func(t *testing.T) {
		c := newClient(t)
		s := newTestStore(t, c, nil)
		ids, rows := makeRows(2500, f) // more than one SCAN page
		for _, v := range []string{"v1", "v2"} {
			if err := s.WriteItems(ctx, v, ids, rows); err != nil {
				t.Fatal(err)
			}
			if err := s.MarkReady(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		// v10 shares v1's text prefix; deleting v1 must not touch it.
		if err := s.WriteItems(ctx, "v10", ids[:1], rows[:1]); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "other:key", "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteVersion(ctx, "v1"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Ready(ctx, "v1"); ok {
			t.Fatal("v1 still ready after DeleteVersion")
		}
		left, err := c.Keys(ctx, "t:v1:*").Result()
		if err != nil || len(left) != 0 {
			t.Fatalf("v1 keys left after delete: %d (%v)", len(left), err)
		}
		dst := make([]float32, f)
		if missing, err := s.Fetch(ctx, "v1", ids[:1], dst, defaults); err != nil || missing != 1 {
			t.Fatalf("Fetch deleted version = %d, %v; want 1 missing", missing, err)
		}
		if missing, err := s.Fetch(ctx, "v2", ids[:1], dst, defaults); err != nil || missing != 0 || !slices.Equal(dst, rows[0]) {
			t.Fatalf("Fetch v2 after deleting v1 = %d, %v, %v", missing, err, dst)
		}
		if missing, _ := s.Fetch(ctx, "v10", ids[:1], dst, defaults); missing != 0 {
			t.Fatal("deleting v1 removed v10's keys")
		}
		if ok, _ := s.Ready(ctx, "v2"); !ok {
			t.Fatal("deleting v1 removed v2's ready marker")
		}
		n, err := c.DBSize(ctx).Result()
		if want := int64(2500 + 1 + 1 + 1); err != nil || n != want { // v2 rows + ready, v10 row, other:key
			t.Fatalf("DBSIZE = %d (%v), want %d", n, err, want)
		}
	})

	t.Run("prefixes with glob characters are literal", func(t *testing.T) {
		c := newClient(t)
		cfg := testConfig()
		cfg.KeyPrefix = "a*"
		s, err := NewStore(c, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "ab:v1:i:x", "keep", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteItems(ctx, "v1", []string{"x"}, [][]float32{{1, 2, 3}}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteVersion(ctx, "v1"); err != nil {
			t.Fatal(err)
		}
		keys, _ := c.Keys(ctx, "*").Result()
		sort.Strings(keys)
		if !slices.Equal(keys, []string{"ab:v1:i:x"}) {
			t.Fatalf("keys after delete = %v, want only ab:v1:i:x", keys)
		}
	})

	t.Run("bad input is refused", func(t *testing.T) {
		s := newTestStore(t, newClient(t), nil)
		dst := make([]float32, f)
		cases := []struct {
			name string
			err  error
			want string
		}{
			{"empty version", s.WriteItems(ctx, "", []string{"a"}, [][]float32{{1}}), "invalid feature version"},
			{"version with colon", s.MarkReady(ctx, "a:b"), "invalid feature version"},
			{"version with glob", s.DeleteVersion(ctx, "v*"), "invalid feature version"},
			{"ids and rows differ", s.WriteItems(ctx, "v", []string{"a"}, nil), "1 ids but 0 rows"},
			{"ragged rows", s.WriteItems(ctx, "v", []string{"a", "b"}, [][]float32{{1}, {1, 2}}), "rows[1]: 2 features"},
			{"empty id", s.WriteItems(ctx, "v", []string{""}, [][]float32{{1}}), "ids[0]: empty id"},
			{"dst too short", func() error { _, err := s.Fetch(ctx, "v", []string{"a", "b"}, dst, defaults); return err }(), "dst has 3 values, want 6"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
					t.Fatalf("err = %v, want %q", c.err, c.want)
				}
			})
		}
	})

	t.Run("unreachable redis fails with defaults filled", func(t *testing.T) {
		c := newClient(t)
		s := newTestStore(t, c, nil)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping = %v", err)
		}
		c.Close()
		if err := s.Ping(ctx); err == nil {
			t.Fatal("Ping on a closed client succeeded")
		}
		dst := []float32{9, 9, 9, 9, 9, 9}
		missing, err := s.Fetch(ctx, "v1", []string{"a", "b"}, dst, defaults)
		if err == nil || missing != 2 {
			t.Fatalf("Fetch = %d, %v; want 2 missing and an error", missing, err)
		}
		if !slices.Equal(dst, slices.Concat(defaults, defaults)) {
			t.Fatalf("dst = %v, want defaults", dst)
		}
	})

	t.Run("real-time counts and history in one round trip", func(t *testing.T) {
		c := newClient(t)
		s := newTestStore(t, c, nil)
		if _, err := s.FetchRealtime(ctx, time.Now(), "u", []string{"a"}, true); err == nil {
			t.Fatal("FetchRealtime without UseRealtime succeeded")
		}
		s.UseRealtime("rt", time.Hour)
		at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		if err := c.Set(ctx, realtime.ItemKey("rt", "a"), realtime.Format(realtime.Stats{Impressions: 40, Clicks: 4, At: at}), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, realtime.ItemKey("rt", "junk"), "not counts", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.RPush(ctx, realtime.UserKey("rt", "u"), "x", "y").Err(); err != nil {
			t.Fatal(err)
		}
		got, err := s.FetchRealtime(ctx, at.Add(2*time.Hour), "u", []string{"a", "absent", "junk"}, true)
		if err != nil {
			t.Fatal(err)
		}
		want := []realtime.Stats{{Impressions: 10, Clicks: 1, At: at.Add(2 * time.Hour)}, {}, {}}
		if len(got.Items) != 3 || got.Items[0].Impressions != 10 || got.Items[0].Clicks != 1 || got.Items[1] != want[1] || got.Items[2] != want[2] {
			t.Fatalf("items = %+v, want %+v (decayed two half-lives; absent and junk as no events)", got.Items, want)
		}
		if !slices.Equal(got.History, []string{"x", "y"}) {
			t.Fatalf("history = %v", got.History)
		}
		// No user, no counters: nothing is read.
		if got, err := s.FetchRealtime(ctx, at, "", []string{"a"}, false); err != nil || got.Items != nil || got.History != nil {
			t.Fatalf("empty fetch = %+v, %v", got, err)
		}
		c.Close()
		if _, err := s.FetchRealtime(ctx, at, "u", []string{"a"}, true); err == nil {
			t.Fatal("FetchRealtime on a closed client succeeded")
		}
	})

	t.Run("expired context", func(t *testing.T) {
		s := newTestStore(t, newClient(t), nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.Fetch(cctx, "v1", []string{"a"}, make([]float32, f), defaults)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Fetch with cancelled ctx = %v, want context.Canceled", err)
		}
	})
}

// gather flattens reg's counters and histogram counts into name{labels} -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestNewStore(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	t.Run("nil client", func(t *testing.T) {
		if _, err := NewStore(nil, testConfig(), nil); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("empty prefix", func(t *testing.T) {
		cfg := testConfig()
		cfg.KeyPrefix = ""
		if _, err := NewStore(c, cfg, nil); err == nil || !strings.Contains(err.Error(), "key_prefix") {
			t.Fatalf("err = %v, want key_prefix error", err)
		}
	})
	t.Run("second store on one registry shares metrics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		a, err := NewStore(c, testConfig(), reg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewStore(c, testConfig(), reg)
		if err != nil {
			t.Fatalf("second NewStore on the same registry: %v", err)
		}
		if a.missing != b.missing || a.fetchSeconds != b.fetchSeconds {
			t.Fatal("second store did not reuse the registered metrics")
		}
	})
}

func TestRowEncoding(t *testing.T) {
	tests := []struct {
		name string
		row  []float32
	}{
		{"empty", nil},
		{"values", []float32{0, -1.5, float32(math.Inf(1)), math.MaxFloat32, math.SmallestNonzeroFloat32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := appendRow(nil, tt.row)
			if len(enc) != headerLen+4*len(tt.row) {
				t.Fatalf("encoded length %d", len(enc))
			}
			got := make([]float32, len(tt.row))
			if !decodeRow(got, string(enc)) || !slices.Equal(got, tt.row) {
				t.Fatalf("decode = %v, want %v", got, tt.row)
			}
			if decodeRow(make([]float32, len(tt.row)+1), string(enc)) {
				t.Fatal("decoded into a row of a different length")
			}
		})
	}
}

// FuzzDecodeRow feeds arbitrary stored values (Redis may hold anything under
// a key) to the decoder: it must never panic, and whatever it accepts must
// re-encode to the same bytes.
func FuzzDecodeRow(f *testing.F) {
	f.Add(string(appendRow(nil, []float32{1, 2, 3})), 3)
	f.Add("\x01\x00\x00", 0)
	f.Add("", 2)
	f.Add("\x02\x01\x00abcd", 1)
	f.Fuzz(func(t *testing.T, val string, n int) {
		if n < 0 || n > 64 {
			return
		}
		dst := make([]float32, n)
		if decodeRow(dst, val) {
			if enc := string(appendRow(nil, dst)); enc != val {
				// NaN payloads survive Float32bits round trips, so a
				// mismatch means the layout is read wrongly.
				t.Fatalf("accepted %q but re-encodes as %q", val, enc)
			}
		}
	})
}

func benchmarkFetch(b *testing.B, newClient clientFactory) {
	ctx := context.Background()
	s := newTestStore(b, newClient(b), prometheus.NewRegistry())
	const n, f = 200, 7
	ids, rows := makeRows(5000, f)
	if err := s.WriteItems(ctx, "v1", ids, rows); err != nil {
		b.Fatal(err)
	}
	ask := make([]string, n)
	for i := range ask {
		ask[i] = ids[(i*37)%len(ids)]
	}
	dst := make([]float32, n*f)
	defaults := make([]float32, f)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := s.Fetch(ctx, "v1", ask, dst, defaults); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkStore_Fetch measures one 200-item fetch (one MGET) over loopback.
func BenchmarkStore_Fetch(b *testing.B) {
	b.Run("embedded", func(b *testing.B) { benchmarkFetch(b, embeddedRedis) })
	b.Run("redis-server", func(b *testing.B) { benchmarkFetch(b, realRedis) })
}
