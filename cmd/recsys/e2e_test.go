package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/internal/redisd"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/world"
)

// testConfig is the default configuration pointed at a temp directory,
// a real redis-server and the embedded broker.
func testConfig(t testing.TB, dir, redisAddr string) *config.Config {
	t.Helper()
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	cfg := config.Default()
	cfg.ONNXRuntime.Library = lib
	cfg.Bundles.Dir = filepath.Join(dir, "bundles")
	cfg.Bundles.PollInterval = 0
	cfg.Build.Catalog = filepath.Join(dir, "world", "catalog.jsonl")
	cfg.Embedded.Kafka.DataDir = filepath.Join(dir, "kafka")
	cfg.Kafka.Spool.Dir = filepath.Join(dir, "spool")
	cfg.Redis.Addr = redisAddr
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.AdminAddr = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func realRedis(t testing.TB) string {
	t.Helper()
	p, err := redisd.Exec(context.Background())
	if err != nil {
		if err == redisd.ErrNoRedisServer && os.Getenv("CI") == "" {
			t.Skipf("real redis-server needed: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p.Addr()
}

// writeWorld writes a synthetic world of c to dir/world, where testConfig
// points the catalog.
func writeWorld(t testing.TB, dir string, c world.Config) {
	t.Helper()
	if err := world.Write(filepath.Join(dir, "world"), c, io.Discard); err != nil {
		t.Fatal(err)
	}
}

func buildBundle(t testing.TB, cfg *config.Config) string {
	t.Helper()
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		t.Fatal(err)
	}
	o, err := buildOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := offline.Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return m.Version
}

// startServer runs the whole process as serve does, on a port-0 listener.
func startServer(t testing.TB, cfg *config.Config) (*Server, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return s, "http://" + ln.Addr().String()
}

// searchOK posts a search that must answer 200 and returns the result.
func searchOK(t testing.TB, base string, body any) engine.Result {
	t.Helper()
	code, b := post(t, base+"/v1/search", body)
	if code != http.StatusOK {
		t.Fatalf("search: %d %s", code, b)
	}
	var res engine.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func post(t testing.TB, url string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func TestServer_EndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, realRedis(t))
	writeWorld(t, dir, world.Config{Items: 2000, Users: 50, Seed: 7})
	version := buildBundle(t, cfg)
	s, base := startServer(t, cfg)
	if got := s.Engine.Current(); got != version {
		t.Fatalf("serving %q, want %q", got, version)
	}

	// Search with a query made of the words of a real item's title.
	items, err := catalog.ReadFile(cfg.Build.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	target := items[17]
	code, body := post(t, base+"/v1/search", map[string]any{"query": target.Title, "k": 10, "user": map[string]any{"id": "u-e2e"}})
	if code != 200 {
		t.Fatalf("search: %d %s", code, body)
	}
	var res engine.Result
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 10 {
		t.Fatalf("search returned %d items, want 10: %s", len(res.Items), body)
	}
	if res.Bundle != version || res.RequestID == "" {
		t.Fatalf("search result bundle %q request id %q", res.Bundle, res.RequestID)
	}
	found := false
	for _, h := range res.Items {
		found = found || h.ID == target.ID
	}
	if !found && target.Available {
		t.Errorf("searching for the exact title of %s did not return it: %s", target.ID, body)
	}

	code, body = post(t, base+"/v1/recommend", map[string]any{"user": map[string]any{"id": "u-e2e"}, "recent_items": []string{items[1].ID, items[2].ID}, "k": 10})
	if code != 200 {
		t.Fatalf("recommend: %d %s", code, body)
	}
	var rec engine.Result
	json.Unmarshal(body, &rec)
	if len(rec.Items) != 10 {
		t.Fatalf("recommend returned %d items, want 10", len(rec.Items))
	}
	for _, h := range rec.Items {
		if h.ID == items[1].ID || h.ID == items[2].ID {
			t.Errorf("recommend returned a recent item %s", h.ID)
		}
	}

	click := map[string]any{"type": "click", "schema_version": 1, "timestamp": time.Now().UTC().Format(time.RFC3339),
		"user_id": "u-e2e", "item_id": res.Items[0].ID, "request_id": res.RequestID, "position": 0}
	code, body = post(t, base+"/v1/feedback", click)
	if code != http.StatusAccepted {
		t.Fatalf("feedback: %d %s", code, body)
	}
	var accepted struct {
		EventID string `json:"event_id"`
	}
	json.Unmarshal(body, &accepted)

	// Read the topic back with a Kafka consumer: both impressions and the click.
	kcfg := cfg.Kafka.Config
	kcfg.Brokers = s.KafkaBrokers
	deadline := time.Now().Add(15 * time.Second)
	for {
		var impressions, clicks int
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := eventlog.ReadTopic(ctx, kcfg, nil, func(ev feedback.Event, r *kgo.Record) error {
			switch {
			case ev.Type == feedback.TypeImpression && ev.RequestID == res.RequestID:
				if len(ev.Items) != 10 || len(ev.Items[0].Features) != len(ev.FeatureNames) || ev.Bundle != version {
					return fmt.Errorf("impression malformed: %+v", ev)
				}
				if ev.Items[0].ItemID != res.Items[0].ID {
					return fmt.Errorf("impression item 0 = %s, response item 0 = %s", ev.Items[0].ItemID, res.Items[0].ID)
				}
				impressions++
			case ev.Type == feedback.TypeImpression && ev.RequestID == rec.RequestID:
				impressions++
			case ev.Type == feedback.TypeClick && ev.EventID == accepted.EventID:
				if string(r.Key) != "u-e2e" {
					return fmt.Errorf("click keyed %q, want the user id", r.Key)
				}
				clicks++
			}
			return nil
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if impressions == 2 && clicks == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic holds %d of 2 impressions and %d of 1 click", impressions, clicks)
		}
		time.Sleep(100 * time.Millisecond) // impressions are produced asynchronously
	}

	// The counter updater consumed the click into the user's history in
	// Redis: a recommend with the user id alone now leaves the clicked item
	// out and ranks the user's neighbourhood in the catalog, and the
	// ranker saw the click in the user features.
	clicked := res.Items[0].ID
	type explained struct {
		ID       string    `json:"id"`
		Features []float32 `json:"features"`
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		code, body = post(t, base+"/v1/recommend", map[string]any{"user": map[string]any{"id": "u-e2e"}, "k": 10, "explain": true})
		if code != http.StatusOK {
			t.Fatalf("recommend by user id: %d %s", code, body)
		}
		var byUser struct {
			Items        []explained `json:"items"`
			FeatureNames []string    `json:"feature_names"`
		}
		if err := json.Unmarshal(body, &byUser); err != nil {
			t.Fatal(err)
		}
		hist := slices.Index(byUser.FeatureNames, "user_history")
		if hist < 0 {
			t.Fatalf("feature names %v lack user_history", byUser.FeatureNames)
		}
		if len(byUser.Items) == 10 && byUser.Items[0].Features[hist] > 0 &&
			!slices.ContainsFunc(byUser.Items, func(h explained) bool { return h.ID == clicked }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recommend by user id never used the click on %s: %s", clicked, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Readiness covers the bundle, Redis and Kafka.
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "redis") || !strings.Contains(string(b), "kafka") {
		t.Fatalf("readyz: %d %s", resp.StatusCode, b)
	}
}

// A catalog with a duplicate id and an empty title fails the build with both
// line numbers, damaged bundles are refused at reload, and the server keeps
// serving the previous bundle throughout.
func TestServer_BadBundlesKeepServing(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, realRedis(t))
	writeWorld(t, dir, world.Config{Items: 1000, Users: 10, Seed: 3})
	good := buildBundle(t, cfg)
	s, base := startServer(t, cfg)

	lines := readLines(t, cfg.Build.Catalog)
	var first map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	var dup, empty map[string]any
	json.Unmarshal([]byte(lines[4]), &dup)
	dup["id"] = first["id"] // line 5 repeats line 1's id
	json.Unmarshal([]byte(lines[9]), &empty)
	empty["title"] = "" // line 10 has an empty title
	lines[4], lines[9] = mustJSON(dup), mustJSON(empty)
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")+"\n"), 0o644)

	cfg.Build.Catalog = bad
	o, err := buildOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = offline.Build(context.Background(), o)
	if err == nil {
		t.Fatal("build of a bad catalog succeeded")
	}
	for _, want := range []string{"line 5", "line 10", "duplicate", "title"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("build error does not mention %q: %v", want, err)
		}
	}
	if err := s.reload(context.Background()); err != nil {
		t.Fatalf("reload after a failed build: %v", err)
	}
	if s.Engine.Current() != good {
		t.Fatalf("serving %q after a failed build, want %q", s.Engine.Current(), good)
	}
	code, body := post(t, base+"/v1/search", map[string]any{"query": "gift", "k": 5})
	if code != 200 {
		t.Fatalf("search after failed build: %d %s", code, body)
	}

	// A published bundle whose files were damaged afterwards is refused at
	// reload, and the good one keeps serving.
	cfg.Build.Catalog = filepath.Join(dir, "world", "catalog.jsonl")
	flip := func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0x10
		return os.WriteFile(p, b, 0o644)
	}
	cases := []struct {
		name, file string
		hurt       func(path string) error
	}{
		{"bit flip in ranker", bundle.RankerFile, flip},
		{"bit flip in index", bundle.IndexFile, flip},
		{"truncated index", bundle.IndexFile, func(p string) error { return os.Truncate(p, 100) }},
		{"empty index", bundle.IndexFile, func(p string) error { return os.Truncate(p, 0) }},
		{"empty items", bundle.ItemsFile, func(p string) error { return os.Truncate(p, 0) }},
	}
	for _, tc := range cases {
		v := buildBundle(t, cfg)
		if err := tc.hurt(filepath.Join(cfg.Bundles.Dir, v, tc.file)); err != nil {
			t.Fatal(err)
		}
		// Through the admin API, as an operator would.
		code, body := post(t, "http://"+s.AdminAddr+"/admin/reload", map[string]any{})
		var refused struct {
			Error struct {
				Code, Message string
			}
			Bundle string
		}
		json.Unmarshal(body, &refused)
		if code != http.StatusConflict || refused.Error.Code != "bundle_refused" || !strings.Contains(refused.Error.Message, tc.file) || refused.Bundle != good {
			t.Errorf("%s: admin reload = %d %s, want 409 bundle_refused naming %s, %s still live", tc.name, code, body, tc.file, good)
		}
		if s.Engine.Current() != good {
			t.Fatalf("%s: serving %q, want %q", tc.name, s.Engine.Current(), good)
		}
		if code, body := post(t, base+"/v1/search", map[string]any{"query": "gift", "k": 5}); code != 200 {
			t.Fatalf("%s: search after refused bundle: %d %s", tc.name, code, body)
		}
	}
	// A sound bundle goes live on the admin call.
	next := buildBundle(t, cfg)
	code, body = post(t, "http://"+s.AdminAddr+"/admin/reload", map[string]any{})
	if want := fmt.Sprintf(`{"bundle":%q,"previous":%q,"changed":true}`, next, good); code != 200 || string(body) != want {
		t.Fatalf("admin reload = %d %s, want 200 %s", code, body, want)
	}
	if s.Engine.Current() != next {
		t.Fatalf("serving %q after the admin reload, want %q", s.Engine.Current(), next)
	}
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestServer_RedisCluster is issue 11's must-show 4: serve against a real
// three-master Redis Cluster. Item features are seeded across the slots
// and fetched back, the counter updater's per-slot scripts keep the
// real-time counters and the user's history there, and they reach the
// ranker: a recommendation by user id alone comes from the history, and
// the clicked item's click and impression counters are served as features.
func TestServer_RedisCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := redisd.ExecCluster(ctx, 3)
	if err != nil {
		if errors.Is(err, redisd.ErrNoRedisServer) && os.Getenv("CI") == "" {
			t.Skipf("real redis-server needed: %v", err)
		}
		t.Fatal(err)
	}
	defer cl.Close()
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	cfg.Redis.Mode, cfg.Redis.Addr, cfg.Redis.Addrs = rank.RedisCluster, "", cl.Addrs()
	cfg.Rank.ItemFeatures = rank.ItemFeaturesStore
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	writeWorld(t, dir, world.Config{Items: 1000, Users: 10, Seed: 5})
	buildBundle(t, cfg)
	_, base := startServer(t, cfg)
	// The first requests dial three nodes and read the slot map within the
	// 50 ms fetch budget; under -race beside other packages they can miss
	// it (flagged, as they should be), so the check allows a few seconds.
	for start := time.Now(); ; {
		real, flagged := featureProbe(t, base)
		if real && !flagged {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("item features from the cluster: real %v, flagged %v", real, flagged)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The user clicks three items shown to them.
	res := searchOK(t, base, map[string]any{"query": "gift", "k": 5, "user": map[string]any{"id": "cu1"}})
	clicked := []string{res.Items[0].ID, res.Items[1].ID, res.Items[2].ID}
	now := time.Now().UTC().Format(time.RFC3339)
	for i, id := range clicked {
		ev := map[string]any{"type": "click", "schema_version": 1, "timestamp": now, "user_id": "cu1", "item_id": id,
			"request_id": res.RequestID, "position": i}
		if code, body := post(t, base+"/v1/feedback", ev); code != http.StatusAccepted {
			t.Fatalf("feedback: %d %s", code, body)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var rec engine.Result
		code, body := post(t, base+"/v1/recommend", map[string]any{"user": map[string]any{"id": "cu1"}, "k": 10, "explain": true})
		if code != http.StatusOK {
			t.Fatalf("recommend: %d %s", code, body)
		}
		if err := json.Unmarshal(body, &rec); err != nil {
			t.Fatal(err)
		}
		hist := slices.Index(rec.FeatureNames, "user_history")
		served := map[string]bool{}
		for _, h := range rec.Items {
			served[h.ID] = true
		}
		fromHistory := len(rec.Items) > 0 && hist >= 0 && rec.Items[0].Features[hist] > 0 && !served[clicked[0]] && len(rec.Degraded) == 0
		// The clicked item's counters, as the ranker sees them.
		s := searchOK(t, base, map[string]any{"query": clicked[0], "k": 1, "explain": true})
		clk, imp := slices.Index(s.FeatureNames, "item_clicks"), slices.Index(s.FeatureNames, "item_impressions")
		counted := len(s.Items) == 1 && s.Items[0].ID == clicked[0] && s.Items[0].Features[clk] > 0 && s.Items[0].Features[imp] > 0
		if fromHistory && counted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s on the cluster: recommendation from the history %v (degraded %v), clicked item's counters served %v",
				fromHistory, rec.Degraded, counted)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServer_ItemFeaturesBundleMatchesStore: item features served from the
// bundle in memory (the default) are the ones the feature store serves
// when seeded from it: the same bundle under both modes gives every query
// the same items with the same ranker inputs.
func TestServer_ItemFeaturesBundleMatchesStore(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	writeWorld(t, dir, world.Config{Items: 1000, Users: 10, Seed: 9})
	buildBundle(t, cfg)
	bases := map[string]string{}
	for _, mode := range []string{rank.ItemFeaturesBundle, rank.ItemFeaturesStore} {
		c := *cfg
		c.Rank.ItemFeatures = mode
		c.Kafka.Spool.Dir, c.Embedded.Kafka.DataDir = t.TempDir(), t.TempDir()
		_, bases[mode] = startServer(t, &c)
	}
	compared := 0
	for _, q := range []string{"gift", "wireless headphones", "garden tools", "red wine"} {
		body := map[string]any{"query": q, "k": 10, "explain": true}
		a, b := searchOK(t, bases[rank.ItemFeaturesBundle], body), searchOK(t, bases[rank.ItemFeaturesStore], body)
		if len(a.Degraded)+len(b.Degraded) > 0 {
			t.Fatalf("%q: degraded %v (bundle), %v (store)", q, a.Degraded, b.Degraded)
		}
		if len(a.Items) != len(b.Items) || len(a.Items) == 0 {
			t.Fatalf("%q: %d items from the bundle, %d from the store", q, len(a.Items), len(b.Items))
		}
		for i := range a.Items {
			if a.Items[i].ID != b.Items[i].ID || !slices.Equal(a.Items[i].Features, b.Items[i].Features) {
				t.Fatalf("%q rank %d: bundle %s %v, store %s %v", q, i, a.Items[i].ID, a.Items[i].Features, b.Items[i].ID, b.Items[i].Features)
			}
			compared++
		}
	}
	t.Logf("%d ranked items compared: same ids, same feature vectors", compared)
}

// worldServer writes a generated world of the given size into a temp
// dir, builds its bundle with the test configuration (adjusted by tune,
// when given) and serves it; -short skips it.
func worldServer(t *testing.T, items int, seed int64, tune func(cfg *config.Config)) (*config.Config, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a bundle; -short skips it")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	writeWorld(t, dir, world.Config{Items: items, Users: 100, Seed: seed})
	if tune != nil {
		tune(cfg)
	}
	buildBundle(t, cfg)
	_, base := startServer(t, cfg)
	return cfg, base
}
