package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// seedAtLoad bounds the seeding attempt inside Load; past it the bundle
// goes live unseeded and Run finishes the job.
const seedAtLoad = 10 * time.Second

// defaultSeedCheck is how often Run checks the live bundle's ready marker
// when engine.seed_check is 0.
const defaultSeedCheck = time.Second

// Run keeps the feature store holding the live bundle's item features
// until ctx ends: every engine.seed_check, and at once when a request
// found rows missing, it checks the bundle's ready marker, and when the
// marker is gone (Redis restarted empty, flushed, or down at load) it
// writes the rows again. Until then requests are served default item
// features and flagged degraded "features". Without a Seeder it returns
// at once.
func (e *Engine) Run(ctx context.Context) error {
	if e.deps.Seeder == nil {
		return nil
	}
	every := e.cfg.SeedCheck
	if every <= 0 {
		every = defaultSeedCheck
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.reseed:
		}
		g, err := e.acquire()
		if err != nil {
			continue // no bundle yet
		}
		cctx, cancel := context.WithTimeout(ctx, seedAtLoad)
		ok, err := e.deps.Seeder.Ready(cctx, g.Version())
		if err == nil && !ok {
			if !g.unseeded.Load() {
				e.log.Warn("feature store lost the live bundle's item features (Redis restarted or flushed); re-seeding", "bundle", g.Version())
			}
			g.unseeded.Store(true)
			if err = e.seed(cctx, g); err != nil {
				e.m.seeds.WithLabelValues("failed").Inc()
			}
		} else if err == nil {
			g.unseeded.Store(false)
		}
		cancel()
		g.release()
		if err != nil && ctx.Err() == nil {
			e.log.Warn("feature store check failed", "error", err)
		}
	}
}

// kickSeed asks Run to check the store now (a request found rows missing).
func (e *Engine) kickSeed() {
	select {
	case e.reseed <- struct{}{}:
	default:
	}
}

// ErrFeaturesUnseeded is what FeaturesReady reports while the store lacks
// the live bundle's item features.
var ErrFeaturesUnseeded = errors.New("the feature store does not hold the live bundle's item features (seeding)")

// FeaturesReady reports, for readiness checks, whether the feature store
// holds the live bundle's item features. It reads the engine's own state,
// not Redis, so a probe costs nothing.
func (e *Engine) FeaturesReady(context.Context) error {
	g := e.current.Load()
	if g == nil {
		return ErrNotReady
	}
	if g.unseeded.Load() {
		return fmt.Errorf("bundle %s: %w", g.Version(), ErrFeaturesUnseeded)
	}
	return nil
}
