package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/world"
)

// Config sets one simulation.
type Config struct {
	// BaseURL is the server, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Sessions to run; session i is a pure function of (Seed, i) and of the
	// server's answers, so two runs with one seed face the same users and
	// queries and differ only by what the server ranked.
	Sessions int
	Seed     uint64
	// K is the results per request.
	K int
	// PurchaseRate scales the chance a click becomes a purchase (times the
	// item's attractiveness).
	PurchaseRate float64
	// Concurrency is the sessions in flight at once.
	Concurrency int
	// Timeout bounds one HTTP call.
	Timeout time.Duration
	// RecommendSources, when set, limits the recommendation candidate
	// sources the sessions ask for (the request's "sources").
	RecommendSources []string
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
		errs = append(errs, fmt.Errorf("base url: must start with http:// or https://, got %q", c.BaseURL))
	}
	if c.Sessions < 1 {
		errs = append(errs, errors.New("sessions: must be >= 1"))
	}
	if c.K < 1 || c.K > 100 {
		errs = append(errs, errors.New("k: must be in 1..100"))
	}
	if c.PurchaseRate < 0 || c.PurchaseRate > 1 {
		errs = append(errs, errors.New("purchase_rate: must be in [0, 1]"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("concurrency: must be >= 1"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be > 0"))
	}
	return errors.Join(errs...)
}

// Surface is what one kind of request achieved.
type Surface struct {
	Requests  int `json:"requests"`
	Shown     int `json:"shown"`
	Clicks    int `json:"clicks"`
	Purchases int `json:"purchases"`
	Degraded  int `json:"degraded"`
	// NDCG sums per-request NDCG@K (Result divides it).
	NDCG float64 `json:"-"`
}

// CTR is clicks per shown item.
func (s Surface) CTR() float64 {
	if s.Shown == 0 {
		return 0
	}
	return float64(s.Clicks) / float64(s.Shown)
}

// MeanNDCG is the mean NDCG@K over requests.
func (s Surface) MeanNDCG() float64 {
	if s.Requests == 0 {
		return 0
	}
	return s.NDCG / float64(s.Requests)
}

// Result sums a simulation.
type Result struct {
	Sessions  int      `json:"sessions"`
	Search    Surface  `json:"search"`
	Recommend Surface  `json:"recommend"`
	Errors    int      `json:"errors"`
	Bundles   []string `json:"bundles"`
	Seconds   float64  `json:"seconds"`
}

// All is both surfaces together.
func (r Result) All() Surface {
	a, b := r.Search, r.Recommend
	return Surface{Requests: a.Requests + b.Requests, Shown: a.Shown + b.Shown, Clicks: a.Clicks + b.Clicks,
		Purchases: a.Purchases + b.Purchases, Degraded: a.Degraded + b.Degraded, NDCG: a.NDCG + b.NDCG}
}

// Simulator runs sessions of w's users against a server.
type Simulator struct {
	cfg    Config
	w      *world.World
	items  []catalog.Item
	byID   map[string]int
	client *http.Client
	// ideal caches each user's ideal DCG: the K most attractive items of
	// the whole catalog, the same bar for every ranker.
	idealMu sync.Mutex
	ideal   map[int]float64
}

// New prepares a simulator over the world w (its whole catalog is held to
// look up what the server returns).
func New(cfg Config, w *world.World, client *http.Client) (*Simulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulate config: %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	n := w.Config().Items
	s := &Simulator{cfg: cfg, w: w, items: make([]catalog.Item, n), byID: make(map[string]int, n), client: client, ideal: map[int]float64{}}
	for i := range n {
		s.items[i] = w.Item(i)
		s.byID[s.items[i].ID] = i
	}
	return s, nil
}

// Run runs cfg.Sessions sessions and sums what they saw.
func (s *Simulator) Run(ctx context.Context) (Result, error) {
	start := time.Now()
	var (
		mu      sync.Mutex
		res     Result
		bundles = map[string]bool{}
		firstEr error
	)
	next := make(chan int)
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for i := range next {
				sr, err := s.session(ctx, i)
				mu.Lock()
				res.Sessions++
				add(&res.Search, sr.search)
				add(&res.Recommend, sr.recommend)
				for _, b := range sr.bundles {
					bundles[b] = true
				}
				if err != nil {
					res.Errors++
					if firstEr == nil {
						firstEr = err
					}
				}
				mu.Unlock()
			}
		})
	}
feed:
	for i := range s.cfg.Sessions {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for b := range bundles {
		res.Bundles = append(res.Bundles, b)
	}
	slices.Sort(res.Bundles)
	res.Seconds = time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	// A few failed calls are reported, not fatal; a run that mostly failed
	// measured nothing.
	if res.Errors*10 > res.Sessions {
		return res, fmt.Errorf("simulate: %d of %d sessions failed, first: %w", res.Errors, res.Sessions, firstEr)
	}
	return res, nil
}

func add(dst *Surface, s Surface) {
	dst.Requests += s.Requests
	dst.Shown += s.Shown
	dst.Clicks += s.Clicks
	dst.Purchases += s.Purchases
	dst.Degraded += s.Degraded
	dst.NDCG += s.NDCG
}

type sessionResult struct {
	search, recommend Surface
	bundles           []string
}

// session i: a user (drawn by the seed) searches, clicks, then asks for
// recommendations from what they clicked and clicks again.
func (s *Simulator) session(ctx context.Context, i int) (sessionResult, error) {
	var out sessionResult
	rng := rand.New(rand.NewPCG(s.cfg.Seed, uint64(i)))
	ui := rng.IntN(s.w.Config().Users)
	u := s.w.User(ui)
	user := map[string]any{"id": u.ID, "age": u.Age}

	var resp response
	if err := s.post(ctx, "/v1/search", map[string]any{"query": s.w.Query(&u, rng), "k": s.cfg.K, "user": user}, &resp); err != nil {
		return out, err
	}
	clicked, err := s.react(ctx, rng, ui, &u, resp, &out.search)
	if err != nil {
		return out, err
	}
	out.bundles = append(out.bundles, resp.Bundle)

	body := map[string]any{"k": s.cfg.K, "user": user}
	if len(s.cfg.RecommendSources) > 0 {
		body["sources"] = s.cfg.RecommendSources
	}
	if len(clicked) > 0 {
		body["recent_items"] = clicked
	}
	resp = response{}
	if err := s.post(ctx, "/v1/recommend", body, &resp); err != nil {
		return out, err
	}
	if _, err := s.react(ctx, rng, ui, &u, resp, &out.recommend); err != nil {
		return out, err
	}
	out.bundles = append(out.bundles, resp.Bundle)
	return out, nil
}

type response struct {
	RequestID string   `json:"request_id"`
	Bundle    string   `json:"bundle"`
	Degraded  []string `json:"degraded"`
	Items     []struct {
		ID string `json:"id"`
	} `json:"items"`
}

// react draws the user's clicks and purchases on one response from the
// hidden click model, posts them, and scores the response.
func (s *Simulator) react(ctx context.Context, rng *rand.Rand, ui int, u *world.User, r response, sum *Surface) ([]string, error) {
	sum.Requests++
	if len(r.Degraded) > 0 {
		sum.Degraded++
	}
	var clicked []string
	dcg := 0.0
	for pos, h := range r.Items {
		idx, ok := s.byID[h.ID]
		if !ok {
			return nil, fmt.Errorf("server returned item %q, not in the world's catalog", h.ID)
		}
		it := &s.items[idx]
		attract := world.Attractiveness(s.w.Utility(u, it))
		if pos < s.cfg.K {
			dcg += attract / math.Log2(float64(pos)+2)
		}
		sum.Shown++
		// Draw both every time so the stream of numbers does not depend on
		// earlier outcomes more than it must.
		c, p := rng.Float64(), rng.Float64()
		if c >= world.Examination(pos)*attract {
			continue
		}
		sum.Clicks++
		clicked = append(clicked, h.ID)
		if err := s.feedback(ctx, "click", u.ID, h.ID, r.RequestID, pos); err != nil {
			return nil, err
		}
		if p < s.cfg.PurchaseRate*attract {
			sum.Purchases++
			if err := s.feedback(ctx, "purchase", u.ID, h.ID, r.RequestID, pos); err != nil {
				return nil, err
			}
		}
	}
	if ideal := s.idealDCG(ui, u); ideal > 0 {
		sum.NDCG += dcg / ideal
	}
	return clicked, nil
}

// idealDCG is the DCG@K of the user's K most attractive items in the whole
// catalog, with attractiveness (the click probability at the top) as gain.
func (s *Simulator) idealDCG(ui int, u *world.User) float64 {
	s.idealMu.Lock()
	v, ok := s.ideal[ui]
	s.idealMu.Unlock()
	if ok {
		return v
	}
	top := make([]float64, 0, s.cfg.K+1)
	for i := range s.items {
		a := world.Attractiveness(s.w.Utility(u, &s.items[i]))
		if len(top) < s.cfg.K || a > top[len(top)-1] {
			j, _ := slices.BinarySearchFunc(top, a, func(x, t float64) int {
				switch {
				case x > t:
					return -1
				case x < t:
					return 1
				}
				return 0
			})
			top = slices.Insert(top, j, a)
			if len(top) > s.cfg.K {
				top = top[:s.cfg.K]
			}
		}
	}
	for p, a := range top {
		v += a / math.Log2(float64(p)+2)
	}
	s.idealMu.Lock()
	s.ideal[ui] = v
	s.idealMu.Unlock()
	return v
}

func (s *Simulator) feedback(ctx context.Context, typ, user, item, req string, pos int) error {
	ev := map[string]any{"type": typ, "schema_version": 1, "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"user_id": user, "item_id": item, "request_id": req, "position": pos}
	return s.post(ctx, "/v1/feedback", ev, nil)
}

func (s *Simulator) post(ctx context.Context, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.cfg.BaseURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %s: status %s: %s", path, strconv.Itoa(resp.StatusCode), bytes.TrimSpace(data[:min(len(data), 300)]))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("post %s: decode response: %w", path, err)
		}
	}
	return nil
}
