package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/world"
)

// fakeServer answers search and recommend from a fixed candidate pool of the
// world, ordered by the hidden utility (good) or against it (bad), and
// counts the feedback posted.
func fakeServer(t *testing.T, w *world.World, good bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var events atomic.Int64
	var reqs atomic.Int64
	pool := make([]int, 200)
	items := make(map[int]catalog.Item, len(pool))
	for i := range pool {
		pool[i] = i * 7 % w.Config().Items
		items[pool[i]] = w.Item(pool[i])
	}
	mux := http.NewServeMux()
	answer := func(rw http.ResponseWriter, r *http.Request) {
		var body struct {
			K    int `json:"k"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(rw, err.Error(), 400)
			return
		}
		var ui int
		fmt.Sscanf(body.User.ID, "user-%d", &ui)
		u := w.User(ui)
		util := make(map[int]float64, len(pool))
		for _, i := range pool {
			it := items[i]
			util[i] = w.Utility(&u, &it)
		}
		order := slices.Clone(pool)
		slices.SortStableFunc(order, func(a, b int) int {
			ua, ub := util[a], util[b]
			if !good {
				ua, ub = ub, ua
			}
			switch {
			case ua > ub:
				return -1
			case ua < ub:
				return 1
			}
			return 0
		})
		type hit struct {
			ID string `json:"id"`
		}
		res := struct {
			RequestID string `json:"request_id"`
			Bundle    string `json:"bundle"`
			Items     []hit  `json:"items"`
		}{RequestID: fmt.Sprintf("r%d", reqs.Add(1)), Bundle: "v1"}
		for _, i := range order[:body.K] {
			res.Items = append(res.Items, hit{world.ItemID(i)})
		}
		json.NewEncoder(rw).Encode(res)
	}
	mux.HandleFunc("/v1/search", answer)
	mux.HandleFunc("/v1/recommend", answer)
	mux.HandleFunc("/v1/feedback", func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(b), `"request_id":"r`) {
			http.Error(rw, "no request id", 400)
			return
		}
		events.Add(1)
		rw.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &events
}

func TestSimulator_Run(t *testing.T) {
	w, err := world.New(world.Config{Items: 1000, Users: 50, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	run := func(good bool, concurrency int) (Result, int64) {
		srv, events := fakeServer(t, w, good)
		s, err := New(Config{BaseURL: srv.URL, Sessions: 300, Seed: 7, K: 10, PurchaseRate: 0.3,
			Concurrency: concurrency, Timeout: 10 * time.Second}, w, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return res, events.Load()
	}
	good, goodEvents := run(true, 4)
	bad, _ := run(false, 1)
	t.Logf("good: CTR %.4f NDCG %.4f; bad: CTR %.4f NDCG %.4f", good.All().CTR(), good.All().MeanNDCG(), bad.All().CTR(), bad.All().MeanNDCG())

	t.Run("counts add up", func(t *testing.T) {
		a := good.All()
		if good.Sessions != 300 || a.Requests != 600 || a.Shown != 6000 || good.Errors != 0 {
			t.Fatalf("%+v", good)
		}
		if int64(a.Clicks+a.Purchases) != goodEvents {
			t.Fatalf("%d clicks + %d purchases, server got %d events", a.Clicks, a.Purchases, goodEvents)
		}
		if !slices.Equal(good.Bundles, []string{"v1"}) {
			t.Fatalf("bundles %v", good.Bundles)
		}
	})
	t.Run("ordering by utility wins on both measures", func(t *testing.T) {
		if good.All().MeanNDCG() <= bad.All().MeanNDCG() || good.All().CTR() <= bad.All().CTR() {
			t.Fatalf("good %+v, bad %+v", good.All(), bad.All())
		}
		if n := good.All().MeanNDCG(); n <= 0 || n > 1 {
			t.Fatalf("NDCG %v outside (0, 1]", n)
		}
	})
	t.Run("seeded whatever the concurrency", func(t *testing.T) {
		again, _ := run(true, 1)
		a, g := again.All(), good.All()
		if math.Abs(a.NDCG-g.NDCG) > 1e-9 {
			t.Fatalf("NDCG sum %v then %v", g.NDCG, a.NDCG)
		}
		a.NDCG = g.NDCG // summed in another order
		if a != g {
			t.Fatalf("%+v then %+v", good.All(), again.All())
		}
	})
}

func TestConfig_Validate(t *testing.T) {
	ok := Config{BaseURL: "http://127.0.0.1:8080", Sessions: 1, K: 10, Concurrency: 1, Timeout: time.Second}
	tests := []struct {
		name   string
		modify func(*Config)
		err    string
	}{
		{"ok", func(*Config) {}, ""},
		{"url", func(c *Config) { c.BaseURL = "127.0.0.1:8080" }, "base url: must start with http://"},
		{"sessions", func(c *Config) { c.Sessions = 0 }, "sessions: must be >= 1"},
		{"k", func(c *Config) { c.K = 0 }, "k: must be in 1..100"},
		{"purchase rate", func(c *Config) { c.PurchaseRate = 2 }, "purchase_rate: must be in [0, 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.modify(&c)
			err := c.Validate()
			if (tt.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}
