package engine

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	stage    *prometheus.HistogramVec
	degraded *prometheus.CounterVec
	loads    *prometheus.CounterVec
	bundle   *prometheus.GaugeVec
	explored *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "recsys_engine_stage_duration_seconds",
			Help:    "Time spent in each pipeline stage (embed, retrieve, features, score, rules).",
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
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.stage, m.degraded, m.loads, m.bundle, m.explored} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("engine metrics: %w", err)
			}
		}
	}
	return m, nil
}
