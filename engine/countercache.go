package engine

import (
	"math"
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
	slots    []counterSlot
}

// counterSlot holds one item's counts in place, not behind a pointer: a
// lookup of a search's candidates reads one array (a pointer per item
// cost a cache miss per candidate, 4.6% of the process's CPU at 300
// searches/s, and an allocation per store). A sequence number guards the
// words: odd while a store writes them, so a lookup that saw it change
// reads again, and a store that finds another one writing leaves it to
// that one (both hold what Redis just said).
type counterSlot struct {
	seq         atomic.Uint32
	impressions atomic.Uint64 // float64 bits
	clicks      atomic.Uint64 // float64 bits
	at          atomic.Int64  // Stats.At, Unix nanoseconds
	read        atomic.Int64  // when Redis answered, Unix nanoseconds; 0: empty
}

func newCounterCache(items int, ttl, halfLife time.Duration) *counterCache {
	if ttl <= 0 {
		return nil
	}
	return &counterCache{ttl: ttl, halfLife: halfLife, slots: make([]counterSlot, items)}
}

// lookup fills out[i] with the cached counts of hits[i], decayed to now,
// where a fresh entry exists at wall time read, and returns the indexes of
// the others.
func (c *counterCache) lookup(hits []candidate, now, read time.Time, out []realtime.Stats, miss []int) []int {
	readNS := read.UnixNano()
	for i, h := range hits {
		// Items added since the bundle have no slot: they are read.
		if int(h.id) >= len(c.slots) {
			miss = append(miss, i)
			continue
		}
		if st, at, ok := c.slots[h.id].load(); ok && time.Duration(readNS-at) < c.ttl {
			out[i] = st.DecayTo(now, c.halfLife)
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
	c.slots[id].store(st, read.UnixNano())
}

// load returns the slot's counts and when they were read; ok is false for
// an empty slot, or one a store is writing (then the caller reads Redis
// rather than wait for it).
func (s *counterSlot) load() (st realtime.Stats, read int64, ok bool) {
	seq := s.seq.Load()
	if seq&1 == 1 {
		return realtime.Stats{}, 0, false
	}
	imp, clk, at, rd := s.impressions.Load(), s.clicks.Load(), s.at.Load(), s.read.Load()
	if rd == 0 || s.seq.Load() != seq {
		return realtime.Stats{}, 0, false
	}
	st = realtime.Stats{Impressions: math.Float64frombits(imp), Clicks: math.Float64frombits(clk)}
	if at != 0 { // 0: the zero time (UnixNano cannot hold it)
		st.At = time.Unix(0, at)
	}
	return st, rd, true
}

func (s *counterSlot) store(st realtime.Stats, read int64) {
	seq := s.seq.Load()
	if seq&1 == 1 || !s.seq.CompareAndSwap(seq, seq+1) {
		return // another store is writing the same item
	}
	var at int64
	if !st.At.IsZero() {
		at = st.At.UnixNano()
	}
	s.impressions.Store(math.Float64bits(st.Impressions))
	s.clicks.Store(math.Float64bits(st.Clicks))
	s.at.Store(at)
	s.read.Store(max(read, 1))
	s.seq.Store(seq + 2)
}
