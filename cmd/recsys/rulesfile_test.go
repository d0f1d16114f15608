package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/world"
)

// TestServer_RulesFileAndDryRun: the rules file is the live rules; a dry
// run applies another set to the same request without changing what live
// traffic gets; a bad rules file is refused (named in /readyz, counted)
// while the old rules keep serving; a good one goes live within the
// reload interval.
func TestServer_RulesFileAndDryRun(t *testing.T) {
	pinRules := func(id string) string {
		return fmt.Sprintf("filters:\n  - name: available\n    expr: item.available\nbusiness:\n  - name: promo\n    when: query == \"headphones\"\n    action: pin\n    items: [%s]\n    position: 1\n", id)
	}
	file := filepath.Join(t.TempDir(), "rules.yaml")
	var pinA, pinB string
	cfg, base := worldServer(t, 2000, 5, func(cfg *config.Config) {
		items, err := catalog.ReadFile(cfg.Build.Catalog)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(items) - 1; i >= 0 && pinB == ""; i-- {
			if items[i].Available && items[i].AgeRating == 0 {
				if pinA == "" {
					pinA = items[i].ID
				} else {
					pinB = items[i].ID
				}
			}
		}
		if err := os.WriteFile(file, []byte(pinRules(pinA)), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.Rules.File = file
		cfg.Rules.ReloadEvery = 50 * time.Millisecond
	})

	// The bundle holds the rules it was built with.
	v, err := bundle.Current(cfg.Bundles.Dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Open(filepath.Join(cfg.Bundles.Dir, v))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(filepath.Join(cfg.Bundles.Dir, v, bundle.RulesFile))
	if err != nil || m.Rules == nil || string(stored) != pinRules(pinA) {
		t.Fatalf("bundle rules: manifest %+v, file %q (%v)", m.Rules, stored, err)
	}

	first := func() string {
		t.Helper()
		res := searchOK(t, base, map[string]any{"query": "headphones", "k": 5})
		if len(res.Items) == 0 {
			t.Fatal("no results")
		}
		return res.Items[0].ID
	}
	if got := first(); got != pinA {
		t.Fatalf("first result %s, want %s pinned by the rules file", got, pinA)
	}

	// A dry run of another pin: both lists, the diff, live traffic untouched.
	code, body := post(t, base+"/v1/rules/dry-run", map[string]any{
		"rules": pinRules(pinB), "search": map[string]any{"query": "headphones", "k": 5}})
	if code != http.StatusOK {
		t.Fatalf("dry run: %d %s", code, body)
	}
	var dr struct {
		Live, Dry struct {
			Items []struct {
				ID     string `json:"id"`
				Pinned bool   `json:"pinned"`
			} `json:"items"`
		}
		Diff struct{ Added, Removed []string }
	}
	if err := json.Unmarshal(body, &dr); err != nil {
		t.Fatal(err)
	}
	if dr.Live.Items[0].ID != pinA || dr.Dry.Items[0].ID != pinB || !dr.Dry.Items[0].Pinned || !slices.Contains(dr.Diff.Added, pinB) {
		t.Fatalf("dry run: live first %s, dry first %+v, diff %+v", dr.Live.Items[0].ID, dr.Dry.Items[0], dr.Diff)
	}
	if got := first(); got != pinA {
		t.Fatalf("after the dry run live traffic gets %s first, want %s", got, pinA)
	}
	// A bad rule set in a dry run is a 400 naming the field.
	code, body = post(t, base+"/v1/rules/dry-run", map[string]any{
		"rules": "business:\n  - name: x\n    action: cap\n    by: colour\n    max: 1\n", "search": map[string]any{"query": "headphones"}})
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"rules"`) || !strings.Contains(string(body), "brand or category") {
		t.Fatalf("bad dry run: %d %s", code, body)
	}

	// A bad file is refused; the old rules keep serving and /readyz says so.
	if err := os.WriteFile(file, []byte("business:\n  - name: promo\n    action: pin\n    when: item.price > 3\n    items: [x]\n    position: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		ready := readyz(t, base)
		return strings.Contains(ready, `"name":"rules","ok":false`) && strings.Contains(ready, `"status":"degraded"`)
	})
	if got := first(); got != pinA {
		t.Fatalf("with a bad rules file on disk the first result is %s, want the old rules' %s", got, pinA)
	}
	if m := metrics(t, base); !strings.Contains(m, `recsys_rules_reloads_total{result="refused"}`) {
		t.Fatal("no refused reload counted")
	}
	// A good file goes live.
	if err := os.WriteFile(file, []byte(pinRules(pinB)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return first() == pinB })
	if ready := readyz(t, base); !strings.Contains(ready, `"name":"rules","ok":true`) {
		t.Fatalf("readyz after a good file: %s", ready)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readyz(t *testing.T, base string) string { return getBody(t, base+"/readyz") }

func metrics(t *testing.T, base string) string { return getBody(t, base+"/metrics") }

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestBuild_RefusesBadRules: a build whose rules do not validate fails
// and publishes nothing.
func TestBuild_RefusesBadRules(t *testing.T) {
	if testing.Short() {
		t.Skip("embeds a catalog; -short skips it")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	writeWorld(t, dir, world.Config{Items: 1000, Users: 10, Seed: 2})
	cfg.Rules.File = filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(cfg.Rules.File, []byte("business:\n  - name: b\n    action: boost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		t.Fatal(err)
	}
	o, err := buildOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := offline.Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), "set exactly one of amount and factor") {
		t.Fatalf("build with bad rules: %v", err)
	}
	if _, err := bundle.Current(cfg.Bundles.Dir); err == nil {
		t.Fatal("a bundle was published")
	}
}

// TestRulesWatch_SettlesBeforeLoading checks that a rules file read while
// it is being written (a prefix first, the whole file a moment later) is
// not made live: its prefix may parse, as here, and would drop the rules
// after it. The next check, finding the same bytes twice, loads it.
func TestRulesWatch_SettlesBeforeLoading(t *testing.T) {
	full := "filters:\n  - name: available\n    expr: item.available\nbusiness:\n  - name: promo\n    action: boost\n    when: item.price < 10\n    amount: 0.5\n"
	prefix := full[:strings.Index(full, "business:")]
	eng, err := engine.New(engine.Config{Candidates: 20, RankTimeout: time.Second, RecentDecay: 0.8, MaxRecent: 5}, engine.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	w := newRulesWatch("rules.yaml", time.Second, eng, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	var reads []string
	w.read = func(string) ([]byte, error) {
		next := reads[0]
		reads = reads[1:]
		return []byte(next), nil
	}
	reads = []string{prefix, full} // mid-write, then done
	if err := w.load(); err != nil {
		t.Fatal(err)
	}
	if v := eng.RulesVersion(); v != "config" {
		t.Fatalf("a file read mid-write went live (%s)", v)
	}
	reads = []string{full, full}
	if err := w.load(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(full))
	if v, want := eng.RulesVersion(), "file:"+hex.EncodeToString(sum[:6]); v != want {
		t.Fatalf("live rules %s, want the whole file's %s", v, want)
	}
	if f, b := eng.Rules().Len(); f != 1 || b != 1 {
		t.Errorf("%d filters and %d business rules live, want the file's 1 and 1", f, b)
	}
}
