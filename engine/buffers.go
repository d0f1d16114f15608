package engine

import (
	"slices"
	"sync"

	"github.com/recsys-dev/recsys/index/cf"
	"github.com/recsys-dev/recsys/internal/permsort"
	"github.com/recsys-dev/recsys/internal/realtime"
	"github.com/recsys-dev/recsys/rules"
)

// floatBufs recycles the per-request feature matrices (candidates x
// features, tens of kilobytes each), so a steady load allocates them once
// per concurrent request rather than once per request.
var floatBufs sync.Pool // *[]float32

// getFloats returns a zeroed buffer of n floats.
func getFloats(n int) *[]float32 {
	p, _ := floatBufs.Get().(*[]float32)
	if p == nil {
		p = new([]float32)
	}
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	clear(*p)
	return p
}

// putFloats hands a buffer back; nothing may use it after.
func putFloats(p *[]float32) { floatBufs.Put(p) }

// scratch is one request's reusable working memory: the candidate list,
// the map that merges the sources' lists into it, and the ranked list the
// rules reorder. Nothing in a Result points into it, so it is recycled
// when the request is answered.
type scratch struct {
	cands  []candidate
	pos    map[int32]int
	ranked []rules.Candidate
	cf     cf.Scratch
	// The feature stage's: the candidates' ids, their counters, which of
	// them the counter cache missed, and those ids.
	ids, fetchIDs []string
	counts        []realtime.Stats
	miss          []int
	sorter        permsort.Buffers[candidate]
	als           []float32 // every item's factor score (recommendCandidates)
}

var scratches = sync.Pool{New: func() any { return &scratch{pos: map[int32]int{}} }}

func getScratch() *scratch { return scratches.Get().(*scratch) }

func putScratch(s *scratch) {
	clear(s.pos)
	clear(s.ranked) // no item pointers or fired-rule lists kept
	clear(s.ids)    // no item ids of a retired bundle kept
	clear(s.fetchIDs[:cap(s.fetchIDs)])
	s.cands, s.ranked = s.cands[:0], s.ranked[:0]
	scratches.Put(s)
}

// grow returns buf emptied with room for n more.
func grow[T any](buf []T, n int) []T { return slices.Grow(buf[:0], n) }
