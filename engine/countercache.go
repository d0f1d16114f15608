package engine

import (
	"sync/atomic"
	"time"

	"github.com/recsys-dev/recsys/internal/realtime"
)

// counterCache keeps the generation's items' real-time counters as Redis
// last returned them, for engine.counter_cache, so the requests of the
// next moment that rank the same popular items share one read (a feature
// store's near cache). It has one slot per item of the catalog, so it is
// bounded by the catalog and a lookup is an index, not a hash.
//
// A slot holds counts decayed to the time of the request that read them;
// exponential decay composes, so decaying them again to a later request's
// time gives what Redis would have, save for events counted since: at most
// ttl of staleness, the price of the shared read.
type counterCache struct {
	ttl      time.Duration
	halfLife time.Duration
	slots    []atomic.Pointer[cachedCounts]
}

type cachedCounts struct {
	st   realtime.Stats
	read time.Time // wall clock when Redis answered
}

func newCounterCache(items int, ttl, halfLife time.Duration) *counterCache {
	if ttl <= 0 {
		return nil
	}
	return &counterCache{ttl: ttl, halfLife: halfLife, slots: make([]atomic.Pointer[cachedCounts], items)}
}

// lookup fills out[i] with the cached counts of hits[i], decayed to now,
// where a fresh entry exists at wall time read, and returns the indexes of
// the others.
func (c *counterCache) lookup(hits []candidate, now, read time.Time, out []realtime.Stats) (miss []int) {
	for i, h := range hits {
		// Items added since the bundle have no slot: they are read.
		if int(h.id) >= len(c.slots) {
			miss = append(miss, i)
			continue
		}
		if e := c.slots[h.id].Load(); e != nil && read.Sub(e.read) < c.ttl {
			out[i] = e.st.DecayTo(now, c.halfLife)
			continue
		}
		miss = append(miss, i)
	}
	return miss
}

// store records the counts Redis returned at wall time read.
func (c *counterCache) store(id int32, st realtime.Stats, read time.Time) {
	if int(id) >= len(c.slots) {
		return
	}
	c.slots[id].Store(&cachedCounts{st: st, read: read})
}
