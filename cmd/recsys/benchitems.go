package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recsys-dev/recsys/world"
)

// itemUpdater posts item changes to the admin API at a fixed rate while a
// load run measures the public one: every tick a batch of price and
// availability patches, with a share of text changes (re-described and
// new items) that the engine must embed and index.
type itemUpdater struct {
	client    *http.Client
	url       string // POST /admin/items
	rate      float64
	textShare float64
	items     int
	sent      atomic.Int64 // operations accepted
	failed    atomic.Int64 // batches refused or failed
	skipped   atomic.Int64 // batches not sent: inflightBatches were still open
	next      int          // new items added so far
}

// updateTick is how often a batch leaves; at most inflightBatches wait
// for their answers.
const (
	updateTick      = 10 * time.Millisecond
	inflightBatches = 8
)

// batches prepares n batch bodies (each with its operation count) before
// a run, so the client spends the run posting, not encoding: it shares
// the machine with the server it measures.
func (u *itemUpdater) batches(n int, seed uint64) (bodies [][]byte, ops []int) {
	rng := rand.New(rand.NewPCG(seed, 3))
	words := strings.Fields("amber velvet quantum harbor maple cobalt lantern prism tundra orchid nimbus saffron")
	per := max(1, int(u.rate*updateTick.Seconds()))
	for range n {
		batch := make([]map[string]any, 0, per)
		seen := map[string]bool{}
		for range per {
			id := world.ItemID(rng.IntN(u.items))
			if seen[id] {
				continue
			}
			seen[id] = true
			switch x := rng.Float64(); {
			case x < u.textShare/2:
				u.next++
				batch = append(batch, map[string]any{"op": "put", "id": fmt.Sprintf("bench-new-%d-%d", seed, u.next), "item": map[string]any{
					"title": words[rng.IntN(len(words))] + " " + words[rng.IntN(len(words))] + " bench item", "price": 10,
					"created_at": time.Now().UTC().Format(time.RFC3339)}})
			case x < u.textShare:
				batch = append(batch, map[string]any{"op": "patch", "id": id, "fields": map[string]any{
					"description": "now also " + words[rng.IntN(len(words))]}})
			case x < u.textShare+0.1:
				// Stock comes and goes at the world's own rate (95% in
				// stock), so the catalog's share of available items holds.
				batch = append(batch, map[string]any{"op": "patch", "id": id, "fields": map[string]any{"available": rng.Float64() < 0.95}})
			default:
				batch = append(batch, map[string]any{"op": "patch", "id": id, "fields": map[string]any{"price": float64(rng.IntN(20000)) / 100}})
			}
		}
		b, _ := json.Marshal(map[string]any{"ops": batch})
		bodies, ops = append(bodies, b), append(ops, len(batch))
	}
	return bodies, ops
}

// run posts the prepared batches, one every updateTick, until they or ctx
// end.
func (u *itemUpdater) run(ctx context.Context, bodies [][]byte, ops []int) {
	t := time.NewTicker(updateTick)
	defer t.Stop()
	// A batch with patches waits until the server applied the ones
	// before it, longer than a tick: several are in flight, so the rate
	// holds (changes to one item may then land out of order, which a
	// benchmark does not mind).
	inflight := make(chan struct{}, inflightBatches)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range bodies {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case inflight <- struct{}{}:
		default:
			u.skipped.Add(1) // the server is that far behind
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-inflight; wg.Done() }()
			// Not cancelled with the run: a batch the server took is
			// counted, so accepted and applied compare.
			u.post(context.WithoutCancel(ctx), bodies[i], ops[i])
		}()
	}
}

func (u *itemUpdater) post(ctx context.Context, body []byte, n int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := u.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			u.failed.Add(1)
		}
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		u.sent.Add(int64(n))
	} else {
		u.failed.Add(1)
	}
}

// updatePairs runs the load at rate in A B pairs, B with item changes
// posted at updates per second, and reports what the changes cost: each
// pair's p99 difference, the changes the server applied and their lag.
func updatePairs(ctx context.Context, stdout io.Writer, client *http.Client, base, admin string, updates, textShare float64, items, pairs int,
	rate float64, duration time.Duration, run func(float64) (loadResult, error), print func(loadResult)) error {
	if updates <= 0 || textShare < 0 || textShare > 1 || pairs < 1 {
		return fmt.Errorf("bench serve: --item-updates must be > 0, --text-share in [0, 1], --pairs >= 1")
	}
	var deltas []float64
	var as, bs []loadResult
	for p := range pairs {
		fmt.Fprintf(stdout, "pair %d, A: %.0f requests/s, no item changes\n", p+1, rate)
		a, err := run(rate)
		if err != nil {
			return err
		}
		print(a)
		before, err := scrape(ctx, client, base)
		if err != nil {
			return err
		}
		u := &itemUpdater{client: client, url: strings.TrimRight(admin, "/") + "/admin/items", rate: updates, textShare: textShare, items: items}
		bodies, ops := u.batches(int(duration/updateTick)+1, uint64(p+1))
		uctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); u.run(uctx, bodies, ops) }()
		start := time.Now()
		fmt.Fprintf(stdout, "pair %d, B: %.0f requests/s with %.0f item changes/s (%.1f%% text changes)\n", p+1, rate, updates, 100*textShare)
		b, err := run(rate)
		cancel()
		<-done
		elapsed := time.Since(start)
		if err != nil {
			return err
		}
		print(b)
		// The applier may trail the last batch briefly.
		time.Sleep(time.Second)
		after, err := scrape(ctx, client, base)
		if err != nil {
			return err
		}
		applied := after["recsys_items_offset"] - before["recsys_items_offset"]
		lagN := after["recsys_items_apply_lag_seconds_count"] - before["recsys_items_apply_lag_seconds_count"]
		lag := (after["recsys_items_apply_lag_seconds_sum"] - before["recsys_items_apply_lag_seconds_sum"]) / max(lagN, 1)
		d := ms(b.p99) - ms(a.p99)
		deltas = append(deltas, d)
		as, bs = append(as, a), append(bs, b)
		fmt.Fprintf(stdout, "pair %d: %d changes accepted (%.0f/s), %.0f applied, mean apply lag %.1f ms, %d batches failed, %d skipped (%d in flight); p99 %+.2f ms with changes\n",
			p+1, u.sent.Load(), float64(u.sent.Load())/elapsed.Seconds(), applied, 1000*lag, u.failed.Load(), u.skipped.Load(), inflightBatches, d)
	}
	fmt.Fprintf(stdout, "p99 cost of item changes per pair (ms): %s\n", fmtDeltas(deltas))
	fmt.Fprintf(stdout, "p99 cost of item changes: %s\n", pairSummary(as, bs))
	return nil
}
