package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/offline/simulate"
	"github.com/recsys-dev/recsys/world"
)

const simulateSynopsis = "simulate [--config FILE] [--url URL] [--sessions N] [--seed S] [--k N] [--concurrency N] " +
	"[--items N --users N --world-seed S] [--json]"

// runSimulate is `recsys simulate`: the world's users against a running
// server, clicks drawn from the hidden click model and posted as feedback.
func runSimulate(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("simulate", simulateSynopsis, stdout)
	path := configFlag(fs)
	url := fs.String("url", "", "server base URL (default http://<server.addr>)")
	var sc simulate.Config
	fs.IntVar(&sc.Sessions, "sessions", 20000, "sessions (one search, then one recommend from its clicks)")
	fs.Uint64Var(&sc.Seed, "seed", 1, "session seed: the same seed replays the same users and queries")
	fs.IntVar(&sc.K, "k", 10, "results per request")
	fs.Float64Var(&sc.PurchaseRate, "purchase-rate", 0.3, "chance a click becomes a purchase, times the item's attractiveness")
	fs.IntVar(&sc.Concurrency, "concurrency", 4, "sessions in flight")
	fs.DurationVar(&sc.Timeout, "timeout", 10*time.Second, "per HTTP call")
	sources := fs.String("recommend-sources", "", "comma-separated recommendation sources to ask for (content, cooc, als, popular, fresh); default all")
	var wc world.Config
	fs.IntVar(&wc.Items, "items", 10000, "the world's items, as given to gen")
	fs.IntVar(&wc.Users, "users", 1000, "the world's users, as given to gen")
	fs.Int64Var(&wc.Seed, "world-seed", 1, "the world's seed, as given to gen")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	sc.BaseURL = *url
	if *sources != "" {
		sc.RecommendSources = strings.Split(*sources, ",")
	}
	if sc.BaseURL == "" {
		sc.BaseURL = "http://" + strings.Replace(cfg.Server.Addr, "0.0.0.0", "127.0.0.1", 1)
	}
	w, err := world.New(wc)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	sim, err := simulate.New(sc, w, nil)
	if err != nil {
		return err
	}
	res, err := sim.Run(ctx)
	if *asJSON {
		if jerr := json.NewEncoder(stdout).Encode(map[string]any{
			"result": res, "ctr": res.All().CTR(), "ndcg": res.All().MeanNDCG(),
			"search_ctr": res.Search.CTR(), "search_ndcg": res.Search.MeanNDCG(),
			"recommend_ctr": res.Recommend.CTR(), "recommend_ndcg": res.Recommend.MeanNDCG(),
		}); jerr != nil {
			return jerr
		}
	} else {
		fmt.Fprintf(stdout, "%d sessions in %.0fs against %s (bundles %v), %d failed\n", res.Sessions, res.Seconds, sc.BaseURL, res.Bundles, res.Errors)
		fmt.Fprintf(stdout, "%-10s %9s %8s %8s %9s %8s %12s %9s\n", "surface", "requests", "shown", "clicks", "purchases", "CTR", "NDCG@k(util)", "degraded")
		for _, row := range []struct {
			name string
			s    simulate.Surface
		}{{"search", res.Search}, {"recommend", res.Recommend}, {"all", res.All()}} {
			fmt.Fprintf(stdout, "%-10s %9d %8d %8d %9d %8.4f %12.4f %9d\n", row.name, row.s.Requests, row.s.Shown,
				row.s.Clicks, row.s.Purchases, row.s.CTR(), row.s.MeanNDCG(), row.s.Degraded)
		}
	}
	return err
}
