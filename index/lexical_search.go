package index

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// LexicalQuery is a query analysed by the index's own analyzer.
type LexicalQuery struct {
	terms []queryTerm
	// words is the number of distinct counted query words (compounds
	// left out), the denominator of TitleShare; at most 64 are tracked.
	words int
}

type queryTerm struct {
	id     int
	weight float64 // idf x query frequency x (k1 + 1)
	bit    uint64  // this word's bit in the title mask; 0 for compounds and past 64 words
}

// Empty reports whether no query term is in the vocabulary: nothing can
// match.
func (q LexicalQuery) Empty() bool { return len(q.terms) == 0 }

// Words is the number of distinct query words, known to the index or not.
func (q LexicalQuery) Words() int { return q.words }

// Parse analyses q. A term repeated in the query counts as often as it is
// repeated, as in Lucene's and the reference BM25 implementations.
func (x *Lexical) Parse(q string) LexicalQuery {
	var out LexicalQuery
	idx := map[string]int{} // term -> position in out.terms, or -1 when unknown
	x.an.AnalyzeQuery(q, func(t string, counted bool) {
		i, seen := idx[t]
		if !seen {
			var bit uint64
			if counted {
				if out.words < 64 {
					bit = 1 << out.words
				}
				out.words++
			}
			id, ok := x.term(t)
			if !ok {
				idx[t] = -1
				return
			}
			idx[t] = len(out.terms)
			out.terms = append(out.terms, queryTerm{id: id, bit: bit})
			i = len(out.terms) - 1
		}
		if i >= 0 {
			out.terms[i].weight++
		}
	})
	for i := range out.terms {
		out.terms[i].weight *= x.idf(out.terms[i].id) * (x.params.K1 + 1)
	}
	return out
}

// LexicalHit is one lexical result.
type LexicalHit struct {
	ID    int32
	Score float32
}

// LexicalResult is the answer to one search. It keeps the score of every
// matching document, not only the hits, so a caller fusing it with another
// source can look up any candidate's lexical score; Release returns its
// memory to the index and must be called once the caller is done.
type LexicalResult struct {
	Hits  []LexicalHit
	x     *Lexical
	s     *lexScratch
	words int
}

// Score is document d's BM25F score for the query (0: no term matched).
func (r *LexicalResult) Score(d int32) float32 { return r.s.acc[d] }

// TitleShare is the share of the query's words found in d's title.
func (r *LexicalResult) TitleShare(d int32) float32 {
	if r.words == 0 {
		return 0
	}
	return float32(bits.OnesCount64(r.s.mask[d])) / float32(r.words)
}

// Release hands the scratch back; r must not be used afterwards.
func (r *LexicalResult) Release() {
	if r.s == nil {
		return
	}
	s := r.s
	for _, d := range s.dirty {
		s.acc[d], s.mask[d] = 0, 0
	}
	s.dirty = s.dirty[:0]
	r.x.pool.Put(s)
	r.s = nil
}

// lexScratch is one search's dense accumulators, zero between searches.
type lexScratch struct {
	acc   []float32 // score per document
	mask  []uint64  // query words seen in the title
	dirty []int32   // documents whose acc or mask is set
	cands []LexicalHit
}

func (x *Lexical) scratch() *lexScratch {
	if s, ok := x.pool.Get().(*lexScratch); ok {
		return s
	}
	return &lexScratch{acc: make([]float32, x.n), mask: make([]uint64, x.n)}
}

// Search scores every document holding a query term (term at a time into
// dense accumulators) and returns the k best that pass keep, best first;
// ties go to the lower document number. keep is called only for documents
// that would enter the top k, so a selective filter still yields k hits
// while any pass, and an expensive one runs rarely.
func (x *Lexical) Search(q LexicalQuery, k int, keep Filter) *LexicalResult {
	s := x.scratch()
	r := &LexicalResult{x: x, s: s, words: min(q.words, 64)}
	for _, t := range q.terms {
		wt := float32(t.weight / impactScale)
		p := x.impDocs[x.impDocOff[t.id]:x.impDocOff[t.id+1]]
		imps := x.impacts[x.impOff[t.id]:x.impOff[t.id+1]]
		d := int32(-1)
		for i, j := 0, 0; i < len(p); j++ {
			gap := uint64(p[i])
			if gap < 0x80 {
				i++
			} else {
				var n int
				gap, n = binary.Uvarint(p[i:])
				i += n
			}
			d += int32(gap) + 1
			if s.acc[d] == 0 && s.mask[d] == 0 {
				s.dirty = append(s.dirty, d)
			}
			s.acc[d] += wt * float32(imps[j])
		}
		if t.bit != 0 {
			x.markTitle(s, t)
		}
	}
	r.Hits = x.top(s, k, keep)
	return r
}

// markTitle sets t's bit in the title mask of every document whose title
// holds it.
func (x *Lexical) markTitle(s *lexScratch, t queryTerm) {
	c := postCursor{p: x.postings[x.postOff[t.id*NumFields+FieldTitle]:x.postOff[t.id*NumFields+FieldTitle+1]], d: -1}
	for c.next(); c.ok; c.next() {
		if s.acc[c.d] == 0 && s.mask[c.d] == 0 {
			s.dirty = append(s.dirty, c.d)
		}
		s.mask[c.d] |= t.bit
	}
}

// top selects the k best scored documents that pass keep. It picks the
// best candidates by score alone, a few more than k, sorts them and asks
// keep in that order, so keep runs about k times when most items pass; a
// selective filter doubles the pick until k pass or none are left.
func (x *Lexical) top(s *lexScratch, k int, keep Filter) []LexicalHit {
	if k <= 0 {
		return nil
	}
	cands := s.cands[:0]
	for _, d := range s.dirty {
		if sc := s.acc[d]; sc > 0 {
			cands = append(cands, LexicalHit{d, sc})
		}
	}
	s.cands = cands
	out := make([]LexicalHit, 0, min(k, len(cands)))
	done := 0 // cands[:done] are sorted and were offered to keep
	for size := k + k/4 + 16; done < len(cands); size *= 2 {
		size = min(size, len(cands))
		selectBest(cands[done:], size-done)
		for _, c := range cands[done:size] {
			if keep == nil || keep(c.ID) {
				out = append(out, c)
				if len(out) == k {
					return out
				}
			}
		}
		done = size
	}
	return out
}

// selectBest moves the n best hits of c (lexBetter order) to its front,
// sorted best first; the order of the rest is unspecified.
func selectBest(c []LexicalHit, n int) {
	if n <= 0 {
		return
	}
	if n*4 >= len(c) {
		slices.SortFunc(c, lexCompare)
		return
	}
	// A min-heap of the best n so far at c[:n], its worst at the root.
	h := c[:n]
	for i := n/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for i := n; i < len(c); i++ {
		if lexBetter(c[i], h[0]) {
			h[0], c[i] = c[i], h[0]
			siftDown(h, 0)
		}
	}
	slices.SortFunc(h, lexCompare)
}

func siftDown(h []LexicalHit, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		worst := l
		if r := l + 1; r < len(h) && lexBetter(h[l], h[r]) {
			worst = r
		}
		if !lexBetter(h[i], h[worst]) {
			return
		}
		h[i], h[worst] = h[worst], h[i]
		i = worst
	}
}

func lexBetter(a, b LexicalHit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.ID < b.ID
}

func lexCompare(a, b LexicalHit) int {
	switch {
	case lexBetter(a, b):
		return -1
	case lexBetter(b, a):
		return 1
	}
	return 0
}
