package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/recsys-dev/recsys/catalog"
)

// Lexical fields, in the order every lexical snapshot stores them.
const (
	FieldTitle = iota
	FieldBrand
	FieldCategory
	FieldTags
	FieldDescription
	NumFields
)

// FieldNames names the lexical fields in storage order.
var FieldNames = [NumFields]string{"title", "brand", "category", "tags", "description"}

// FieldWeights weigh each field's term frequencies and lengths in BM25F.
// A weight of 0 leaves the field out of scoring.
type FieldWeights struct {
	Title       float64 `yaml:"title"`
	Brand       float64 `yaml:"brand"`
	Category    float64 `yaml:"category"`
	Tags        float64 `yaml:"tags"`
	Description float64 `yaml:"description"`
}

func (w FieldWeights) array() [NumFields]float64 {
	return [NumFields]float64{w.Title, w.Brand, w.Category, w.Tags, w.Description}
}

// LexicalConfig is the index.lexical section: the analysis chain (fixed at
// build time and stored in the snapshot, so queries are analysed as the
// items were) and the BM25F parameters (serving knobs applied at load).
type LexicalConfig struct {
	AnalyzerConfig `yaml:",inline"`
	// K1 saturates term frequency; B scales length normalisation.
	K1     float64      `yaml:"k1"`
	B      float64      `yaml:"b"`
	Fields FieldWeights `yaml:"fields"`
}

// DefaultLexicalConfig is what config.yaml spells out. k1 0.9 and b 0.4 are
// the BM25 parameters the published BEIR baselines use; the title counts
// twice as much as the description, the brand one and a half times.
func DefaultLexicalConfig() LexicalConfig {
	return LexicalConfig{AnalyzerConfig: DefaultAnalyzerConfig(), K1: 0.9, B: 0.4,
		Fields: FieldWeights{Title: 2, Brand: 1.5, Category: 1, Tags: 1, Description: 1}}
}

// Validate reports every bad field with its key.
func (c LexicalConfig) Validate() error {
	errs := []error{c.AnalyzerConfig.Validate(), c.Params().Validate()}
	return errors.Join(errs...)
}

// Params are the scoring knobs of c.
func (c LexicalConfig) Params() LexicalParams {
	return LexicalParams{K1: c.K1, B: c.B, Weights: c.Fields.array()}
}

// LexicalParams are BM25F's parameters. With every weight 1 the score is
// exactly BM25 over the fields concatenated into one.
type LexicalParams struct {
	K1, B   float64
	Weights [NumFields]float64
}

// Validate names a bad parameter.
func (p LexicalParams) Validate() error {
	var errs []error
	if !(p.K1 > 0 && p.K1 <= 100) {
		errs = append(errs, fmt.Errorf("k1: must be in (0, 100], got %v", p.K1))
	}
	if !(p.B >= 0 && p.B <= 1) {
		errs = append(errs, fmt.Errorf("b: must be in [0, 1], got %v", p.B))
	}
	any := false
	for f, w := range p.Weights {
		if !(w >= 0 && w <= 1000) {
			errs = append(errs, fmt.Errorf("fields.%s: must be in [0, 1000], got %v", FieldNames[f], w))
		}
		any = any || w > 0
	}
	if !any {
		errs = append(errs, errors.New("fields: at least one weight must be > 0"))
	}
	return errors.Join(errs...)
}

// Lexical is an in-memory inverted index scored with BM25F in the
// "combined fields" form: a term's frequency in a document is the weighted
// sum of its frequencies in the fields, its length the weighted sum of the
// field lengths, and one saturation applies to the sum. Postings are kept
// per term and field (delta-coded document numbers, the frequency folded
// into the low bit when it is 1), so field weights are chosen at load
// without a rebuild.
//
// Documents are dense int32 numbers in the order they were given, as in
// every vector index. After Tune, a Lexical is read-only and safe for
// concurrent searches.
type Lexical struct {
	an *Analyzer
	n  int

	// Vocabulary, sorted: term i is termBlob[termOff[i]:termOff[i+1]].
	termOff  []uint32
	termBlob []byte
	df       []uint32 // documents holding the term in any field
	// postOff[t*NumFields+f] starts term t's postings in field f.
	postOff  []uint64
	postings []byte
	lens     []uint16 // lens[f*n+d]: counted terms of field f in document d

	// Set by Tune: for each term, its postings over every weighted field
	// merged into one list (document gaps as uvarints in impDocs, from
	// impDocOff[t]) with each posting's saturated BM25F frequency
	// tf/(tf + k1*(1-b+b*dl/avgdl)), quantised to 1/65535, in impacts from
	// impOff[t]. A query term then costs one pass over one list.
	params    LexicalParams
	impDocs   []byte
	impDocOff []uint64
	impacts   []uint16
	impOff    []uint64
	pool      sync.Pool

	// fieldLen sums each field's lengths over the documents (set by Tune),
	// so a delta built on this index can normalise by its average length
	// under any weights.
	fieldLen [NumFields]float64
	// base is set on a delta (see Delta): the statistics of the index it
	// extends, which its idf and length normalisation use.
	base *lexBase
}

// impactScale is the quantisation of a saturated frequency (always < 1).
const impactScale = 65535

// maxFieldLen caps a stored field length; longer fields count as this long.
const maxFieldLen = math.MaxUint16

// BuildLexical analyses n documents with cfg's analyzer and indexes them;
// text returns document d's text in field f. Analysis runs on every core.
func BuildLexical(ctx context.Context, cfg LexicalConfig, n int, text func(d, f int) string) (*Lexical, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("build lexical index: %w", err)
	}
	if n <= 0 || n > math.MaxInt32 {
		return nil, fmt.Errorf("build lexical index: %d documents, want 1..%d", n, math.MaxInt32)
	}
	an, err := NewAnalyzer(cfg.AnalyzerConfig)
	if err != nil {
		return nil, fmt.Errorf("build lexical index: %w", err)
	}
	b := newLexBuilder(n)
	// Analyse chunks on every core and merge them in document order, so
	// the postings come out sorted without a sort; at most 2 x workers
	// chunks are in memory at once.
	const chunk = 1024
	workers := runtime.GOMAXPROCS(0)
	type result struct {
		docs [][NumFields][]termFreq
		lens [][NumFields]uint16
	}
	pending := make(chan chan result, 2*workers)
	sem := make(chan struct{}, workers)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(pending)
		for start := 0; start < n; start += chunk {
			ch := make(chan result, 1)
			select {
			case pending <- ch:
			case <-stop:
				return
			}
			end := min(start+chunk, n)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				r := result{docs: make([][NumFields][]termFreq, end-start), lens: make([][NumFields]uint16, end-start)}
				for d := start; d < end; d++ {
					for f := range NumFields {
						r.docs[d-start][f], r.lens[d-start][f] = analyzeField(an, text(d, f))
					}
				}
				ch <- r
			}()
		}
	}()
	d := 0
	for ch := range pending {
		r := <-ch
		for i := range r.docs {
			b.add(int32(d), r.docs[i], r.lens[i])
			d++
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("build lexical index: %w", err)
		}
	}
	x := b.finish(an)
	if err := x.Tune(cfg.Params()); err != nil {
		return nil, fmt.Errorf("build lexical index: %w", err)
	}
	return x, nil
}

type termFreq struct {
	term string
	tf   uint32
}

// analyzeField returns a field's distinct terms with their frequencies, in
// first-seen order, and its counted length.
func analyzeField(an *Analyzer, text string) ([]termFreq, uint16) {
	var out []termFreq
	length := 0
	an.Analyze(text, func(t string, counted bool) {
		if counted {
			length++
		}
		for i := range out {
			if out[i].term == t {
				out[i].tf++
				return
			}
		}
		out = append(out, termFreq{t, 1})
	})
	return out, uint16(min(length, maxFieldLen))
}

// lexBuilder accumulates postings per term and field in document order.
type lexBuilder struct {
	n     int
	ids   map[string]int32
	terms []string
	lists [][NumFields]postList
	df    []uint32
	lens  []uint16
	seen  map[int32]bool // terms of the document being added
}

type postList struct {
	data []byte
	last int32 // last document appended, -1 for none
}

func newLexBuilder(n int) *lexBuilder {
	return &lexBuilder{n: n, ids: map[string]int32{}, lens: make([]uint16, NumFields*n), seen: map[int32]bool{}}
}

func (b *lexBuilder) add(d int32, fields [NumFields][]termFreq, lens [NumFields]uint16) {
	clear(b.seen)
	for f := range NumFields {
		b.lens[f*b.n+int(d)] = lens[f]
		for _, tf := range fields[f] {
			id, ok := b.ids[tf.term]
			if !ok {
				id = int32(len(b.terms))
				b.ids[tf.term] = id
				b.terms = append(b.terms, tf.term)
				var l [NumFields]postList
				for i := range l {
					l[i].last = -1
				}
				b.lists = append(b.lists, l)
				b.df = append(b.df, 0)
			}
			if !b.seen[id] {
				b.seen[id] = true
				b.df[id]++
			}
			l := &b.lists[id][f]
			l.data = appendPosting(l.data, uint32(d-l.last-1), tf.tf)
			l.last = d
		}
	}
}

// appendPosting writes one posting: the gap to the previous document
// (minus one) shifted left by one, the low bit set when a frequency other
// than 1 follows.
func appendPosting(dst []byte, gap, tf uint32) []byte {
	v := uint64(gap) << 1
	if tf != 1 {
		v |= 1
	}
	dst = binary.AppendUvarint(dst, v)
	if tf != 1 {
		dst = binary.AppendUvarint(dst, uint64(tf))
	}
	return dst
}

// finish sorts the vocabulary and lays the lists out flat.
func (b *lexBuilder) finish(an *Analyzer) *Lexical {
	order := make([]int32, len(b.terms))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		switch {
		case b.terms[x] < b.terms[y]:
			return -1
		case b.terms[x] > b.terms[y]:
			return 1
		}
		return 0
	})
	x := &Lexical{an: an, n: b.n, lens: b.lens, df: make([]uint32, len(order)),
		termOff: make([]uint32, 1, len(order)+1), postOff: make([]uint64, 1, len(order)*NumFields+1)}
	var blob, post int
	for _, id := range order {
		blob += len(b.terms[id])
		for f := range NumFields {
			post += len(b.lists[id][f].data)
		}
	}
	x.termBlob, x.postings = make([]byte, 0, blob), make([]byte, 0, post)
	for i, id := range order {
		x.termBlob = append(x.termBlob, b.terms[id]...)
		x.termOff = append(x.termOff, uint32(len(x.termBlob)))
		x.df[i] = b.df[id]
		for f := range NumFields {
			x.postings = append(x.postings, b.lists[id][f].data...)
			x.postOff = append(x.postOff, uint64(len(x.postings)))
		}
	}
	return x
}

// Len is the number of documents.
func (x *Lexical) Len() int { return x.n }

// Terms is the vocabulary size.
func (x *Lexical) Terms() int { return len(x.df) }

// Analyzer is the chain the index was built with; queries must use it.
func (x *Lexical) Analyzer() *Analyzer { return x.an }

// Params are the scoring parameters in use.
func (x *Lexical) Params() LexicalParams { return x.params }

// Tune sets the scoring parameters and precomputes every posting's
// saturated frequency under them. Call it before the index is shared: it
// is not safe concurrently with Search.
func (x *Lexical) Tune(p LexicalParams) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("tune lexical index: %w", err)
	}
	dl := make([]float64, x.n)
	var total float64
	for f := range NumFields {
		w := p.Weights[f]
		if w == 0 {
			continue
		}
		for d, l := range x.lens[f*x.n : (f+1)*x.n] {
			dl[d] += w * float64(l)
			total += w * float64(l)
		}
	}
	avg := total / float64(x.n)
	for f := range NumFields {
		var sum float64
		for _, l := range x.lens[f*x.n : (f+1)*x.n] {
			sum += float64(l)
		}
		x.fieldLen[f] = sum
	}
	if x.base != nil {
		avg = x.base.avgLen(p.Weights)
	}
	norm := dl // reused: from here on the length normalisation per document
	for d := range norm {
		r := 1.0
		if avg > 0 {
			r = dl[d] / avg
		}
		norm[d] = p.K1 * (1 - p.B + p.B*r)
	}
	docs := make([]byte, 0, len(x.postings))
	docOff := make([]uint64, 1, len(x.df)+1)
	imps := make([]uint16, 0, len(x.postings)/2)
	impOff := make([]uint64, 1, len(x.df)+1)
	var heads [NumFields]postCursor
	for t := range x.df {
		for f := range NumFields {
			heads[f] = postCursor{p: x.postings[x.postOff[t*NumFields+f]:x.postOff[t*NumFields+f+1]], d: -1}
			if p.Weights[f] == 0 {
				heads[f].p = nil
			}
			heads[f].next()
		}
		last := int32(-1)
		for {
			// The smallest document among the fields' heads, and its
			// weighted frequency summed over them.
			d := int32(math.MaxInt32)
			for f := range heads {
				if heads[f].ok && heads[f].d < d {
					d = heads[f].d
				}
			}
			if d == math.MaxInt32 {
				break
			}
			var tf float64
			for f := range heads {
				if heads[f].ok && heads[f].d == d {
					tf += p.Weights[f] * float64(heads[f].tf)
					heads[f].next()
				}
			}
			docs = binary.AppendUvarint(docs, uint64(d-last-1))
			last = d
			imps = append(imps, uint16(math.Round(tf/(tf+norm[d])*impactScale)))
		}
		docOff = append(docOff, uint64(len(docs)))
		impOff = append(impOff, uint64(len(imps)))
	}
	x.params, x.impDocs, x.impDocOff, x.impacts, x.impOff = p, docs, docOff, imps, impOff
	return nil
}

// postCursor walks one postings list.
type postCursor struct {
	p  []byte
	d  int32
	tf uint32
	ok bool
}

func (c *postCursor) next() {
	if len(c.p) == 0 {
		c.ok = false
		return
	}
	v, n := binary.Uvarint(c.p)
	c.p = c.p[n:]
	c.tf = 1
	if v&1 != 0 {
		u, n := binary.Uvarint(c.p)
		c.p = c.p[n:]
		c.tf = uint32(u)
	}
	c.d += int32(v>>1) + 1
	c.ok = true
}

// term looks a term up in the sorted vocabulary.
func (x *Lexical) term(t string) (int, bool) {
	lo, hi := 0, len(x.df)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if string(x.termBlob[x.termOff[m]:x.termOff[m+1]]) < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(x.df) && string(x.termBlob[x.termOff[lo]:x.termOff[lo+1]]) == t {
		return lo, true
	}
	return 0, false
}

// idf is BM25's inverse document frequency in Lucene's non-negative form.
// On a delta both counts are the base's alone, a term the base lacks
// counting as held by one document (see Delta).
func (x *Lexical) idf(t int) float64 {
	df, n := float64(x.df[t]), float64(x.n)
	if x.base != nil {
		df, n = float64(max(x.base.df[t], 1)), float64(x.base.n)
	}
	return math.Log(1 + (n-df+0.5)/(df+0.5))
}

// ItemField is an item's text in lexical field f; tags are joined by
// spaces.
func ItemField(it *catalog.Item, f int) string {
	switch f {
	case FieldTitle:
		return it.Title
	case FieldBrand:
		return it.Brand
	case FieldCategory:
		return it.Category
	case FieldTags:
		return strings.Join(it.Tags, " ")
	case FieldDescription:
		return it.Description
	}
	return ""
}
