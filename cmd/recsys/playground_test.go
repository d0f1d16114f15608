package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/recsys-dev/recsys/catalog"
)

// chromium finds Debian's chromium (make test-tools installs it); without
// it the test skips locally and fails in CI.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found: run make test-tools")
	}
	t.Skip("chromium not found: run make test-tools")
	return ""
}

// TestPlayground_Browser drives the playground in headless Chromium as a
// person would: type a query and see ten cards, open an explanation whose
// contributions add up to the score, dry-run a pin rule and see the pinned
// item first. It fails on any console error or uncaught exception, and
// saves a screenshot (in the test's temp dir, and in
// RECSYS_SCREENSHOT_DIR when set).
func TestPlayground_Browser(t *testing.T) {
	exe := chromium(t)
	cfg, base := worldServer(t, 2000, 3, nil)
	items, err := catalog.ReadFile(cfg.Build.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	// An item the live rules let through, to pin.
	var pin string
	for i := len(items) - 1; i >= 0 && pin == ""; i-- {
		if items[i].Available && items[i].AgeRating == 0 && !strings.Contains(strings.ToLower(items[i].Title), "headphones") {
			pin = items[i].ID
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("headless", true), chromedp.WindowSize(1400, 1100))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	// Everything the page writes to the console, from before it loads.
	var mu sync.Mutex
	var problems []string
	consoleCtx, stopConsole := context.WithCancel(ctx)
	defer stopConsole()
	messages := chromedp.Console(consoleCtx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()

	rulesYAML := fmt.Sprintf("filters:\n  - name: available\n    expr: item.available\nbusiness:\n  - name: promo\n    when: query != \"\"\n    action: pin\n    items: [%s]\n    position: 1\n", pin)
	shot := filepath.Join(t.TempDir(), "playground.png")
	step := func(name string, err error) {
		t.Helper()
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("browser: %s: %v (console so far: %v)", name, err, problems)
		}
	}
	step("search", chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "wireless headphones"),
		chromedp.Click(chromedp.ID("search-btn")),
		chromedp.WaitVisible(chromedp.CSS("#results .card:nth-child(10)")),
	))
	nCards, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#results .card').length`))
	step("count cards", err)
	cards, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("results")))
	step("read cards", err)
	step("explain", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#results .card:first-child .explain-btn")),
		chromedp.WaitVisible(chromedp.ID("contributions")),
	))
	explainText, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("explain")))
	step("read explanation", err)
	step("dry run", chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("rules"), rulesYAML),
		chromedp.Click(chromedp.ID("dryrun-btn")),
		chromedp.WaitVisible(chromedp.CSS("#dry-results .card")),
	))
	dryFirst, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#dry-results .card:first-child")))
	step("read dry run", err)
	diff, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("diff")))
	step("read diff", err)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	step("screenshot", err)
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if d := os.Getenv("RECSYS_SCREENSHOT_DIR"); d != "" {
		if err := os.WriteFile(filepath.Join(d, "playground.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	if nCards != 10 {
		t.Fatalf("%d result cards, want 10:\n%s", nCards, cards)
	}
	if !strings.Contains(explainText, "+ contributions =") || !strings.Contains(explainText, "Ranker score") {
		t.Fatalf("explanation panel:\n%s", explainText)
	}
	if !strings.Contains(dryFirst, pin) || !strings.Contains(dryFirst, "pinned") {
		t.Fatalf("dry run's first card is %q, want the pinned %s", dryFirst, pin)
	}
	if !strings.Contains(diff, pin) {
		t.Fatalf("diff %q does not name the pinned item %s", diff, pin)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the page logged problems:\n%s", strings.Join(problems, "\n"))
	}
}
