package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/world"
)

// adminDo sends one admin request and decodes a 2xx answer into out.
func adminDo(t testing.TB, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	} else if resp.StatusCode/100 != 2 && out != nil {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func idsOf(res engine.Result) []string {
	out := make([]string, len(res.Items))
	for i, h := range res.Items {
		out[i] = h.ID
	}
	return out
}

// waitUntil polls cond every 5 ms up to limit and returns how long it took
// to hold (limit+ when it never did).
func waitUntil(limit time.Duration, start time.Time, cond func() bool) time.Duration {
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			return limit + time.Millisecond
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The live catalog end to end, through the process serve runs and the
// build command: item changes posted to the admin API reach search and
// recommend within their bounds, and neither a restart nor the next
// build undoes them.
func TestServer_LiveCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bundles; -short skips it")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	cfg.Server.RequestTimeout = 5 * time.Second
	writeWorld(t, dir, world.Config{Items: 2000, Users: 50, Seed: 3})
	items, err := catalog.ReadFile(cfg.Build.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	buildBundle(t, cfg)
	s, base := startServer(t, cfg)
	admin := "http://" + s.AdminAddr
	search := func(base, q string) []string {
		return idsOf(searchOK(t, base, map[string]any{"query": q, "k": 10}))
	}

	// 1. Marked unavailable: gone from search within 1 s, p99 over 100.
	var lat []time.Duration
	var hidden []string
	for i := 0; len(hidden) < 100 && i < len(items); i++ {
		it := items[i]
		if !it.Available || !slices.Contains(search(base, it.Title), it.ID) {
			continue
		}
		start := time.Now()
		adminDo(t, http.MethodPatch, admin+"/admin/items/"+it.ID, map[string]any{"available": false}, &struct{}{})
		lat = append(lat, waitUntil(3*time.Second, start, func() bool { return !slices.Contains(search(base, it.Title), it.ID) }))
		hidden = append(hidden, it.ID)
	}
	if len(hidden) < 100 {
		t.Fatalf("only %d items found by their titles", len(hidden))
	}
	slices.Sort(lat)
	t.Logf("unavailable -> gone from search, 100 updates: p50 %v, p99 %v, max %v",
		percentile(lat, 0.5), percentile(lat, 0.99), slices.Max(lat))
	if p := percentile(lat, 0.99); p > time.Second {
		t.Errorf("p99 %v > 1s", p)
	}

	// 2. A new item with a unique title: found by search and by
	// recommend-similar (seed: its nearest old item) within 2 s.
	newItem := catalog.Item{ID: "live-zq-1", Title: "zyxquor flamingo lantern", Brand: "Lumenade", Category: "home-decor",
		Tags: []string{"lamp", "pink"}, Price: 42, Available: true, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	start := time.Now()
	adminDo(t, http.MethodPut, admin+"/admin/items/"+newItem.ID, newItem, &struct{}{})
	found := waitUntil(3*time.Second, start, func() bool {
		got := search(base, "zyxquor flamingo")
		return len(got) > 0 && got[0] == newItem.ID
	})
	similar := waitUntil(3*time.Second, start, func() bool {
		code, b := post(t, base+"/v1/recommend", map[string]any{"seed_item": newItem.ID, "k": 5})
		return code == http.StatusOK && bytes.Contains(b, []byte(`"items":[{`))
	})
	t.Logf("new item: found by search after %v, recommend-similar answers after %v", found, similar)
	if found > 2*time.Second || similar > 2*time.Second {
		t.Errorf("new item not live within 2s (search %v, recommend %v)", found, similar)
	}
	var li engine.LiveItem
	adminDo(t, http.MethodGet, admin+"/admin/items/"+newItem.ID, nil, &li)
	if li.Source != "delta" || li.Offset == nil || li.Item.Title != newItem.Title {
		t.Errorf("GET /admin/items: %+v", li)
	}

	check := func(stage, base string) {
		t.Helper()
		for _, id := range hidden[:20] {
			i := slices.IndexFunc(items, func(it catalog.Item) bool { return it.ID == id })
			if slices.Contains(search(base, items[i].Title), id) {
				t.Errorf("%s: unavailable %s is back", stage, id)
			}
		}
		if got := search(base, "zyxquor flamingo"); len(got) == 0 || got[0] != newItem.ID {
			t.Errorf("%s: new item lost: %v", stage, got)
		}
	}

	// 3. A restart replays the topic from the bundle's offset.
	s.Close()
	s2, base2 := startServer(t, cfg)
	check("after restart", base2)

	// 4. The next build folds the topic in (reading the running serve's
	// broker), records the offset, and the reload keeps every change.
	cfgPath := writeConfig(t, cfg, filepath.Join(dir, "config.yaml"))
	var out bytes.Buffer
	if err := dispatch(context.Background(), []string{"build", "--config", cfgPath}, &out, io.Discard); err != nil {
		t.Fatalf("recsys build: %v\n%s", err, out.String())
	}
	v, err := bundle.Current(cfg.Bundles.Dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Open(filepath.Join(cfg.Bundles.Dir, v))
	if err != nil {
		t.Fatal(err)
	}
	if m.ItemsOffset == nil || *m.ItemsOffset != 101 || m.Items != len(items)+1 {
		t.Fatalf("built bundle: items %d, offset %v (want %d items, offset 101)\n%s", m.Items, m.ItemsOffset, len(items)+1, out.String())
	}
	code, b := post(t, "http://"+s2.AdminAddr+"/admin/reload", nil)
	if code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, b)
	}
	check("after the build", base2)
	adminDo(t, http.MethodGet, "http://"+s2.AdminAddr+"/admin/items/"+newItem.ID, nil, &li)
	if li.Source != "bundle" || li.Bundle != v {
		t.Errorf("after the build the new item should come from the bundle: %+v", li)
	}
}

// Two replicas on one broker and one Redis answer alike after 10,000
// mixed item changes written through one of them.
func TestServer_LiveCatalogReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a bundle; -short skips it")
	}
	dir := t.TempDir()
	redisAddr := realRedis(t)
	cfg := testConfig(t, dir, redisAddr)
	cfg.Server.RequestTimeout = 5 * time.Second
	writeWorld(t, dir, world.Config{Items: 3000, Users: 50, Seed: 5})
	items, err := catalog.ReadFile(cfg.Build.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	buildBundle(t, cfg)
	a, baseA := startServer(t, cfg)
	cfgB := *cfg
	cfgB.Kafka.Brokers = a.KafkaBrokers
	cfgB.Kafka.Spool.Dir = filepath.Join(dir, "spool-b")
	b, baseB := startServer(t, &cfgB)

	r := rand.New(rand.NewPCG(11, 12))
	words := strings.Fields("amber velvet quantum harbor maple cobalt lantern prism tundra orchid nimbus saffron basalt " +
		"meadow quartz ember willow falcon garnet cedar")
	title := func() string {
		return words[r.IntN(len(words))] + " " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]
	}
	alive := make([]string, 0, len(items)+3000)
	byID := map[string]catalog.Item{}
	for _, it := range items {
		alive = append(alive, it.ID)
		byID[it.ID] = it
	}
	const total, batch = 10000, 500
	for sent, n := 0, 0; sent < total; sent += batch {
		var ops []map[string]any
		touched := map[string]bool{}
		pick := func() string {
			for {
				if id := alive[r.IntN(len(alive))]; !touched[id] {
					touched[id] = true
					return id
				}
			}
		}
		for range batch {
			switch x := r.IntN(10); {
			case x < 6:
				ops = append(ops, map[string]any{"op": "patch", "id": pick(),
					"fields": map[string]any{"available": r.IntN(3) > 0, "price": float64(r.IntN(10000)) / 100}})
			case x < 8:
				n++
				it := catalog.Item{ID: fmt.Sprintf("live-%d", n), Title: title(), Category: "live", Brand: words[r.IntN(len(words))],
					Price: 10, Available: true, CreatedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
				touched[it.ID] = true
				alive = append(alive, it.ID)
				byID[it.ID] = it
				ops = append(ops, map[string]any{"op": "put", "id": it.ID, "item": it})
			case x < 9:
				id := pick()
				it := byID[id]
				it.Title = title() + " " + it.Title
				byID[id] = it
				ops = append(ops, map[string]any{"op": "put", "id": id, "item": it})
			default:
				id := pick()
				i := slices.Index(alive, id)
				alive = slices.Delete(alive, i, i+1)
				ops = append(ops, map[string]any{"op": "delete", "id": id})
			}
		}
		var res struct {
			Results []struct{ Offset int64 } `json:"results"`
		}
		adminDo(t, http.MethodPost, "http://"+a.AdminAddr+"/admin/items", map[string]any{"ops": ops}, &res)
	}
	deadline := time.Now().Add(30 * time.Second)
	for a.Engine.ItemsOffset() < total || b.Engine.ItemsOffset() < total {
		if time.Now().After(deadline) {
			t.Fatalf("replicas at offsets %d and %d of %d", a.Engine.ItemsOffset(), b.Engine.ItemsOffset(), total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	type answer struct {
		ID    string
		Score float32
	}
	answers := func(base, path string, body any) []answer {
		code, raw := post(t, base+path, body)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, raw)
		}
		var res engine.Result
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
		out := make([]answer, len(res.Items))
		for i, h := range res.Items {
			out[i] = answer{h.ID, h.Score}
		}
		return out
	}
	same, nonEmpty := 0, 0
	for q := range 100 {
		var path string
		var body any
		if q < 70 {
			path, body = "/v1/search", map[string]any{"query": title(), "k": 10}
		} else {
			path, body = "/v1/recommend", map[string]any{"seed_item": alive[r.IntN(len(alive))], "k": 10}
		}
		ra, rb := answers(baseA, path, body), answers(baseB, path, body)
		if slices.Equal(ra, rb) {
			same++
		} else {
			t.Errorf("%s %v: replicas differ:\n%v\n%v", path, body, ra, rb)
		}
		if len(ra) > 0 {
			nonEmpty++
		}
	}
	t.Logf("after %d item changes: %d of 100 queries answered identically by both replicas (%d non-empty)", total, same, nonEmpty)
	if nonEmpty < 90 {
		t.Errorf("only %d of 100 queries found anything", nonEmpty)
	}
}
