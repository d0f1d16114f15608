package engine

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recsys-dev/recsys/index"
)

type metrics struct {
	stage    *prometheus.HistogramVec
	degraded *prometheus.CounterVec
	loads    *prometheus.CounterVec
	bundle   *prometheus.GaugeVec
	explored *prometheus.CounterVec
	seeds    *prometheus.CounterVec
	// counterCache counts item counter lookups by result (hit, miss).
	counterCache *prometheus.CounterVec
	// ruleEffects counts what business rules did to shown items, and
	// ruleDrops the candidates they kept out, by action.
	ruleEffects *prometheus.CounterVec
	ruleDrops   *prometheus.CounterVec
	// explainable is 1 when the live ranker can split its scores into
	// feature contributions, 0 when explanations say "unavailable".
	explainable prometheus.Gauge
	// The live catalog: changes applied by op, failed batches, the lag
	// from a change's acceptance to its application here, and the live
	// view's offset and size beyond the bundle.
	itemsApplied    *prometheus.CounterVec
	itemsFailed     prometheus.Counter
	itemsLag        prometheus.Histogram
	itemsOffset     prometheus.Gauge
	itemsTombstones prometheus.Gauge
	itemsInserted   prometheus.Gauge
	itemsChanged    prometheus.Gauge
	itemsRebuildDue prometheus.Gauge
	itemsLagRecords prometheus.Gauge
}

// indexCollector reports the live index's search strategy counters. They
// start from zero with every generation (a new index), which Prometheus
// reads as a counter reset.
type indexCollector struct {
	live     func() *Generation
	searches *prometheus.Desc
	short    *prometheus.Desc
}

func newIndexCollector(live func() *Generation) *indexCollector {
	return &indexCollector{live: live,
		searches: prometheus.NewDesc("recsys_index_searches_total",
			"Searches of the live HNSW index by strategy (graph, filtered-graph, exact, graph-then-exact); resets when a bundle loads.",
			[]string{"strategy"}, nil),
		short: prometheus.NewDesc("recsys_index_short_results_total",
			"Searches of the live HNSW index that returned fewer than k hits; resets when a bundle loads.", nil, nil),
	}
}

func (c *indexCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.searches; ch <- c.short }

func (c *indexCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.live()
	if g == nil {
		return
	}
	h, ok := g.index.(interface{ Counters() index.Counters })
	if !ok {
		return
	}
	n := h.Counters()
	for _, s := range []struct {
		strategy index.Strategy
		v        int64
	}{{index.StrategyGraph, n.Graph}, {index.StrategyFilteredGraph, n.FilteredGraph}, {index.StrategyExact, n.Exact},
		{index.StrategyGraphThenExact, n.GraphThenExact}} {
		ch <- prometheus.MustNewConstMetric(c.searches, prometheus.CounterValue, float64(s.v), s.strategy.String())
	}
	ch <- prometheus.MustNewConstMetric(c.short, prometheus.CounterValue, float64(n.Short))
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "recsys_engine_stage_duration_seconds",
			Help:    "Time spent in each pipeline stage (embed, retrieve, features, score, rules; retrieve_lexical and retrieve_dense inside retrieve for text queries).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}, []string{"surface", "stage"}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_engine_degraded_total",
			Help: "Requests answered with a fallback for a stage (features: defaults; ranking: retrieval order).",
		}, []string{"stage"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_engine_bundle_loads_total",
			Help: "Bundle load attempts by result.",
		}, []string{"result"}),
		bundle: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recsys_engine_bundle_info",
			Help: "The live bundle version (value 1).",
		}, []string{"version"}),
		explored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_engine_explored_total",
			Help: "Responses shown in a random order for position-bias estimation (engine.explore_rate).",
		}, []string{"surface"}),
		ruleEffects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_rules_effects_total",
			Help: "Changes business rules made to returned items (a boost, a pin, a relaxed cap ...), by surface.",
		}, []string{"surface"}),
		ruleDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_rules_dropped_total",
			Help: "Candidates business rules kept out of a response that their score placed in it, by surface and action (hide, cap, pin, explore).",
		}, []string{"surface", "action"}),
		explainable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recsys_engine_ranker_explainable",
			Help: "1 when the live ranker carries its Go form (explain answers feature contributions), 0 when it does not.",
		}),
		seeds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_engine_feature_seeds_total",
			Help: "Writes of a bundle's item features into the feature store, at load or after the store lost them, by result (seeded, failed).",
		}, []string{"result"}),
		counterCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_engine_counter_cache_total",
			Help: "Item real-time counter lookups by where they were answered: hit (engine.counter_cache) or miss (Redis).",
		}, []string{"result"}),
		itemsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_items_applied_total",
			Help: "Items-topic records applied to the live catalog by op (upsert, delete; delete_unknown: an id never seen; invalid: undecodable, skipped).",
		}, []string{"op"}),
		itemsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recsys_items_apply_failures_total",
			Help: "Batches of item changes that failed to apply (retried; the live catalog stays at the last applied offset).",
		}),
		itemsLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "recsys_items_apply_lag_seconds",
			Help:    "Time from an item change's acceptance by the admin API to its application on this replica.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		itemsOffset: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recsys_items_offset",
			Help: "Items-topic offset after the last change the live catalog holds.",
		}),
		itemsTombstones: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recsys_items_tombstones",
			Help: "Items deleted since the live bundle was built (never returned).",
		}),
		itemsInserted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recsys_items_inserted_since_build",
			Help: "Items added since the live bundle was built.",
		}),
		itemsChanged: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recsys_items_changed_since_build",
			Help: "Items whose live version differs from the live bundle's (changed, added or deleted).",
		}),
		itemsLagRecords: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recsys_items_lag_records",
			Help: "Items-topic records written but not yet applied by this replica (read every 5 s).",
		}),
		itemsRebuildDue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recsys_items_rebuild_due",
			Help: "1 when the items embedded since the bundle exceed engine.live.rebuild_share of it: time to rebuild.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.stage, m.degraded, m.loads, m.bundle, m.explored, m.seeds, m.counterCache, m.ruleEffects, m.ruleDrops, m.explainable,
			m.itemsApplied, m.itemsFailed, m.itemsLag, m.itemsOffset, m.itemsTombstones, m.itemsInserted, m.itemsChanged, m.itemsRebuildDue,
			m.itemsLagRecords} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("engine metrics: %w", err)
			}
		}
	}
	return m, nil
}
