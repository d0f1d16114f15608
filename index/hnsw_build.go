package index

import (
	"context"
	"sync"
	"sync/atomic"
	"unsafe"
)

// builder holds the state only construction needs: the int8 codes the
// walk scores, a lock per node, which serialises the writers of its link
// lists, and one for the entry point.
//
// Readers take no lock. Link words are read and written atomically, and a
// writer stores the ids before the count that exposes them, so a reader
// sees some count and, below it, ids that were valid links of that node
// at that level at some point: a consistent enough view for a walk, which
// only needs valid node ids. (A list's count is raised only after its new
// slot is written and lowered only by a re-selection that writes every
// slot below the new count.) This removed a lock and a copy per expanded
// node; profiles of the locked version spent a tenth of the build in
// Mutex.Lock and the copy.
//
// The walk that finds a new node's candidates runs on int8 codes even for
// a float32 index: it reads a quarter of the bytes, and a build is bound by
// memory latency (on a random 1M-node graph a step on codes took 60-90 ns
// against 140-250 on float32). The ef_construction candidates it returns
// are then re-scored exactly, and the neighbour selection (the heuristic
// and the pruning of full lists) uses exact distances only, so the links
// are chosen as before from nearly the same candidates: recall@10 at equal
// ef_search was unchanged within the run-to-run spread at 100k x 128
// (low rank and clustered) and 100k x 384 (clustered).
type builder struct {
	h      *HNSW
	quant  *quantizer
	codes  []int8
	locks  []sync.Mutex
	global sync.Mutex
}

func (h *HNSW) build(ctx context.Context, workers int, quant *quantizer, codes []int8) error {
	b := &builder{h: h, quant: quant, codes: codes, locks: make([]sync.Mutex, h.n)}
	// Node 0 starts the graph alone; the real entry point is adopted when
	// its own insertion runs (its level exceeds the current top).
	h.entry, h.maxLevel = 0, int(h.levels[0])
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newSearcher(h.n, h.dim)
			for {
				i := next.Add(1) - 1
				if i >= int64(h.n) {
					return
				}
				if i%1024 == 0 && ctx.Err() != nil {
					errc <- ctx.Err()
					return
				}
				b.insert(s, int32(i))
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// insert adds q following the paper's Algorithm 1: greedy descent through
// the layers above q's level, then at each of q's layers an efConstruction
// search, heuristic neighbour selection, and reverse links (pruned with the
// same heuristic when full).
func (b *builder) insert(s *searcher, q int32) {
	h := b.h
	level := int(h.levels[q])
	b.global.Lock()
	ep, top := h.entry, h.maxLevel
	if level <= top {
		b.global.Unlock()
	} else {
		// q becomes the entry point: hold the lock so no insertion starts
		// from a top layer q has not joined yet. Rare (probability 1/M).
		defer b.global.Unlock()
	}
	vq := h.Vector(q)
	wq := s.walkQuery(b.quant, b.codes, vq)
	cur, curD := ep, h.walkDist(&wq, b.codes, ep)
	for lc := top; lc > level; lc-- {
		cur, curD = b.greedy(s, &wq, cur, curD, lc)
	}
	s.eps = append(s.eps[:0], distID{curD, cur})
	for lc := min(level, top); lc >= 0; lc-- {
		b.searchLayer(s, &wq, h.efConstr, lc)
		// The walk's results, in walk distances, are the next layer's
		// entry points (in any order: they go into heaps); the selection
		// gets them re-scored exactly.
		s.eps = append(s.eps[:0], s.res...)
		s.exact = append(s.exact[:0], s.eps...)
		if wq.c != nil {
			for i := range s.exact {
				if i+prefetchAhead < len(s.exact) {
					h.prefetch(s.exact[i+prefetchAhead].id)
				}
				s.exact[i].d = h.dist(vq, s.exact[i].id)
			}
		}
		sel := b.selectHeuristic(&s.exact, h.m, s.sel[:0])
		s.sel = sel
		b.locks[q].Lock()
		l := h.links(q, lc)
		for i, c := range sel {
			atomic.StoreInt32(&l[1+i], c.id)
		}
		atomic.StoreInt32(&l[0], int32(len(sel)))
		b.locks[q].Unlock()
		for _, c := range sel {
			b.connect(s, c.id, q, c.d, lc)
		}
	}
	if level > top {
		h.entry, h.maxLevel = q, level
	}
}

// loadLinks appends the ids of a link block being written concurrently
// (see builder) to dst.
func loadLinks(dst, l []int32) []int32 {
	n := int(atomic.LoadInt32(&l[0]))
	for i := 1; i <= n; i++ {
		dst = append(dst, atomic.LoadInt32(&l[i]))
	}
	return dst
}

// greedy walks to the nearest node at level from cur (ef = 1).
func (b *builder) greedy(s *searcher, q *query, cur int32, curD float32, level int) (int32, float32) {
	h := b.h
	for changed := true; changed; {
		changed = false
		s.tmp = loadLinks(s.tmp[:0], h.links(cur, level))
		for _, e := range s.tmp {
			if d := h.walkDist(q, b.codes, e); d < curD {
				cur, curD, changed = e, d, true
			}
		}
	}
	return cur, curD
}

// searchLayer is the paper's Algorithm 2 during construction, from the
// entry points in s.eps (their distances must be walk distances) into
// s.res.
func (b *builder) searchLayer(s *searcher, q *query, ef, level int) {
	h := b.h
	s.newEpoch()
	s.cand, s.res = s.cand[:0], s.res[:0]
	for _, e := range s.eps {
		s.marks[e.id] = s.epoch
		s.cand.push(e)
		s.res.push(e)
	}
	for len(s.res) > ef {
		s.res.pop()
	}
	for len(s.cand) > 0 {
		c := s.cand.pop()
		if c.d > s.res[0].d && len(s.res) >= ef {
			break
		}
		l := h.links(c.id, level)
		n := int(atomic.LoadInt32(&l[0]))
		s.tmp = s.tmp[:0]
		for i := 1; i <= n; i++ {
			if e := atomic.LoadInt32(&l[i]); s.marks[e] != s.epoch {
				s.marks[e] = s.epoch
				s.tmp = append(s.tmp, e)
			}
		}
		ahead := q.prefetchAhead()
		for _, e := range s.tmp[:min(ahead, len(s.tmp))] {
			h.prefetchWalk(q, b.codes, e)
		}
		for j, e := range s.tmp {
			if j+ahead < len(s.tmp) {
				h.prefetchWalk(q, b.codes, s.tmp[j+ahead])
			}
			d := h.walkDist(q, b.codes, e)
			switch {
			case len(s.res) < ef:
				s.cand.push(distID{d, e})
				s.res.push(distID{d, e})
			case d < s.res[0].d:
				s.cand.push(distID{d, e})
				s.res.replaceTop(distID{d, e})
			}
		}
		if len(s.cand) > 0 {
			// The next candidate's link block, needed on the next turn.
			// Measured on a random 1M-node graph: 15% off each step.
			nl := h.links(s.cand[0].id, level)
			prefetchVec(unsafe.Pointer(&nl[0]), uintptr(len(nl))*4)
		}
	}
}

// selectHeuristic is the paper's Algorithm 4 without extension: walk the
// candidates nearest first and keep one only if it is nearer to the base
// than to every neighbour kept so far. It spreads links across directions,
// which keeps clustered data navigable. cands hold exact distances, in
// any order: they are made a heap and popped nearest first, since the
// selection usually stops after a fraction of them (sorting all of them
// was 8% of a build). It consumes cands.
func (b *builder) selectHeuristic(cands *minDist, m int, out []distID) []distID {
	h := b.h
	cands.heapify()
	for len(*cands) > 0 && len(out) < m {
		c := cands.pop()
		vc := h.Vector(c.id)
		keep := true
		for _, r := range out {
			if h.dist(vc, r.id) < c.d {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, c)
		}
	}
	return out
}

// connect adds the reverse link e -> q at level, re-selecting e's links
// with the heuristic when the list is full. d is the exact distance.
func (b *builder) connect(s *searcher, e, q int32, d float32, level int) {
	h := b.h
	mx := h.m
	if level == 0 {
		mx = h.m0
	}
	b.locks[e].Lock()
	defer b.locks[e].Unlock()
	l := h.links(e, level)
	n := int(l[0]) // this goroutine holds the only writer's lock
	if n < mx {
		atomic.StoreInt32(&l[1+n], q)
		atomic.StoreInt32(&l[0], int32(n+1))
		return
	}
	ve := h.Vector(e)
	s.prune = append(s.prune[:0], distID{d, q})
	ids := l[1 : 1+n]
	for _, x := range ids[:min(prefetchAhead, n)] {
		h.prefetch(x)
	}
	for i, x := range ids {
		if i+prefetchAhead < n {
			h.prefetch(ids[i+prefetchAhead])
		}
		s.prune = append(s.prune, distID{h.dist(ve, x), x})
	}
	sel := b.selectHeuristic(&s.prune, mx, s.sel2[:0])
	s.sel2 = sel
	for i, c := range sel {
		atomic.StoreInt32(&l[1+i], c.id)
	}
	atomic.StoreInt32(&l[0], int32(len(sel)))
}
