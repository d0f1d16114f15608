package index

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// lexBase is what a delta's scores need of the index it extends.
type lexBase struct {
	n        int
	fieldLen [NumFields]float64
	df       []uint32 // per term of the delta's vocabulary, its base df (0 if absent)
}

// avgLen is the base's average document length under weights w.
func (b *lexBase) avgLen(w [NumFields]float64) float64 {
	if b.n == 0 {
		return 0
	}
	var total float64
	for f, l := range b.fieldLen {
		total += w[f] * l
	}
	return total / float64(b.n)
}

// Delta indexes n more documents (numbered 0..n-1 in the delta; text
// returns document d's text in field f) so that they can be searched
// beside x and their scores compared with x's: the result is a Lexical of
// its own, with x's analyzer and parameters, but a term's idf is x's (its
// document frequency in x over x.Len() documents; a term x lacks counts as
// held by one document) and lengths are normalised by x's average
// document length, the one x's own scores use. A document's score thus
// depends on its own text and x alone, not on which other documents share
// its delta: replicas that split the same changes into different deltas
// score them alike. With a delta small beside x, a document scores nearly
// what it would in an index rebuilt over both.
//
// Queries for the delta go through its own Parse (its vocabulary is its
// own); its results are a Lexical's like any other. n may be 0: the delta
// then matches nothing, so callers need no special case. A delta of a
// delta is refused (its statistics would leave out the first base), and
// a delta's snapshot would lose the base's statistics: a delta is rebuilt
// from its documents, not stored.
//
// Delta only reads x, so it may run while x serves searches (not while
// x.Tune runs). Analysis runs on the calling goroutine: a delta is small
// and rebuilt often, and BuildLexical's fan-out would cost more than it
// saves.
func (x *Lexical) Delta(ctx context.Context, n int, text func(d, f int) string) (*Lexical, error) {
	switch {
	case x.impOff == nil:
		return nil, errors.New("lexical delta: base index is not tuned")
	case x.base != nil:
		return nil, errors.New("lexical delta: base index is itself a delta")
	case n < 0 || n > math.MaxInt32-x.n:
		return nil, fmt.Errorf("lexical delta: %d documents, want 0..%d", n, math.MaxInt32-x.n)
	}
	b := newLexBuilder(n)
	for d := range n {
		if d%256 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("lexical delta: %w", ctx.Err())
		}
		var fields [NumFields][]termFreq
		var lens [NumFields]uint16
		for f := range NumFields {
			fields[f], lens[f] = analyzeField(x.an, text(d, f))
		}
		b.add(int32(d), fields, lens)
	}
	y := b.finish(x.an)
	base := &lexBase{n: x.n, fieldLen: x.fieldLen, df: make([]uint32, len(y.df))}
	for t := range y.df {
		if i, ok := x.term(string(y.termBlob[y.termOff[t]:y.termOff[t+1]])); ok {
			base.df[t] = x.df[i]
		}
	}
	y.base = base
	if err := y.Tune(x.params); err != nil {
		return nil, fmt.Errorf("lexical delta: %w", err)
	}
	return y, nil
}
