package index

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"unsafe"

	"github.com/recsys-dev/recsys/internal/strictjson"
)

// A lexical snapshot uses the common framing (see snapshot.go) with magic
// "RSLEXIC\x00"; the header's dim is the number of fields and its count the
// number of documents. Sections:
//
//	20 parameters: JSON {fields, stopwords, stemmer, k1, b, weights}
//	21 term offsets: uint32 x (terms+1) into the term bytes
//	22 term bytes: the sorted vocabulary, concatenated
//	23 document frequencies: uint32 x terms
//	24 postings offsets: uint64 x (terms*fields+1) into the postings
//	25 postings: per term and field, (gap<<1 | tf!=1) uvarints, tf after
//	26 field lengths: uint16 x (fields*documents)
//
// Load checks every offset, that the vocabulary is strictly sorted, and
// decodes every posting once (ascending documents below the count,
// frequencies >= 1, document frequencies that match), so a damaged or
// hostile file is refused at load rather than read out of bounds later.
const (
	magicLexical = "RSLEXIC\x00"

	sectionLexParams   = 20
	sectionLexTermOff  = 21
	sectionLexTerms    = 22
	sectionLexDF       = 23
	sectionLexPostOff  = 24
	sectionLexPostings = 25
	sectionLexLengths  = 26
)

type lexParamsJSON struct {
	Fields    []string           `json:"fields"`
	Stopwords string             `json:"stopwords"`
	Stemmer   string             `json:"stemmer"`
	K1        float64            `json:"k1"`
	B         float64            `json:"b"`
	Weights   map[string]float64 `json:"weights"`
}

// sliceBytes is the little-endian encoding of v: its memory on the
// platforms this runs on (checked by littleEndian), an explicit encoding
// elsewhere.
func sliceBytes[T uint16 | uint32 | uint64](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	size := int(unsafe.Sizeof(v[0]))
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*size)
	}
	b := make([]byte, 0, len(v)*size)
	for _, x := range v {
		for i := range size {
			b = append(b, byte(uint64(x)>>(8*i)))
		}
	}
	return b
}

// decodeLE decodes a little-endian array of T; the caller has checked
// that len(b) is a multiple of T's size.
func decodeLE[T uint16 | uint32 | uint64](b []byte) []T {
	size := int(unsafe.Sizeof(T(0)))
	v := make([]T, len(b)/size)
	for i := range v {
		var x uint64
		for j := size - 1; j >= 0; j-- {
			x = x<<8 | uint64(b[i*size+j])
		}
		v[i] = T(x)
	}
	return v
}

// WriteTo writes the index in the snapshot format.
func (x *Lexical) WriteTo(w io.Writer) (int64, error) {
	cfg := x.an.Config()
	p := lexParamsJSON{Fields: FieldNames[:], Stopwords: cfg.Stopwords, Stemmer: cfg.Stemmer,
		K1: x.params.K1, B: x.params.B, Weights: map[string]float64{}}
	for f, name := range FieldNames {
		p.Weights[name] = x.params.Weights[f]
	}
	params, err := json.Marshal(p)
	if err != nil {
		return 0, err
	}
	return writeSnapshot(w, magicLexical, NumFields, x.n, []section{
		{sectionLexParams, params},
		{sectionLexTermOff, sliceBytes(x.termOff)},
		{sectionLexTerms, x.termBlob},
		{sectionLexDF, sliceBytes(x.df)},
		{sectionLexPostOff, sliceBytes(x.postOff)},
		{sectionLexPostings, x.postings},
		{sectionLexLengths, sliceBytes(x.lens)},
	})
}

// WriteFile writes a snapshot to path atomically.
func (x *Lexical) WriteFile(path string) error { return writeFile(path, x) }

// LoadLexical reads and verifies a snapshot written by WriteFile.
func LoadLexical(path string) (*Lexical, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load lexical snapshot: %w", err)
	}
	x, err := DecodeLexical(b)
	if err != nil {
		return nil, fmt.Errorf("load lexical snapshot %s: %w", path, err)
	}
	return x, nil
}

// DecodeLexical decodes and verifies a snapshot held in memory. The
// result does not alias b; it is tuned with the parameters it was built
// with until Tune is called.
func DecodeLexical(b []byte) (*Lexical, error) {
	s, err := parseSnapshot(b, magicLexical, sectionLexParams, sectionLexTermOff, sectionLexTerms,
		sectionLexDF, sectionLexPostOff, sectionLexPostings, sectionLexLengths)
	if err != nil {
		return nil, err
	}
	if s.dim != NumFields {
		return nil, fmt.Errorf("%w: %d fields, this build knows %d", ErrCorrupt, s.dim, NumFields)
	}
	var p lexParamsJSON
	if err := strictjson.Decode(s.sections[sectionLexParams], &p, "parameters"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if len(p.Fields) != NumFields {
		return nil, fmt.Errorf("%w: parameters list %d fields, want %d", ErrCorrupt, len(p.Fields), NumFields)
	}
	var params LexicalParams
	params.K1, params.B = p.K1, p.B
	for f, name := range FieldNames {
		if p.Fields[f] != name {
			return nil, fmt.Errorf("%w: field %d is %q, want %q", ErrCorrupt, f, p.Fields[f], name)
		}
		params.Weights[f] = p.Weights[name]
	}
	an, err := NewAnalyzer(AnalyzerConfig{Stopwords: p.Stopwords, Stemmer: p.Stemmer})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	x := &Lexical{an: an, n: s.count}
	if err := x.decodeSections(s); err != nil {
		return nil, err
	}
	if err := x.Tune(params); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return x, nil
}

func (x *Lexical) decodeSections(s *snapshot) error {
	sec := s.sections
	if len(sec[sectionLexTermOff])%4 != 0 || len(sec[sectionLexTermOff]) < 4 {
		return fmt.Errorf("%w: term offsets section is %d bytes", ErrCorrupt, len(sec[sectionLexTermOff]))
	}
	terms := len(sec[sectionLexTermOff])/4 - 1
	switch {
	case len(sec[sectionLexDF]) != 4*terms:
		return fmt.Errorf("%w: document frequencies section is %d bytes for %d terms", ErrCorrupt, len(sec[sectionLexDF]), terms)
	case len(sec[sectionLexPostOff]) != 8*(terms*NumFields+1):
		return fmt.Errorf("%w: postings offsets section is %d bytes for %d terms", ErrCorrupt, len(sec[sectionLexPostOff]), terms)
	case len(sec[sectionLexLengths]) != 2*NumFields*x.n:
		return fmt.Errorf("%w: field lengths section is %d bytes for %d documents", ErrCorrupt, len(sec[sectionLexLengths]), x.n)
	}
	x.termOff = decodeLE[uint32](sec[sectionLexTermOff])
	x.termBlob = bytes.Clone(sec[sectionLexTerms])
	x.df = decodeLE[uint32](sec[sectionLexDF])
	x.postOff = decodeLE[uint64](sec[sectionLexPostOff])
	x.postings = bytes.Clone(sec[sectionLexPostings])
	x.lens = decodeLE[uint16](sec[sectionLexLengths])
	if x.termOff[0] != 0 || int(x.termOff[terms]) != len(x.termBlob) {
		return fmt.Errorf("%w: term offsets do not span the term bytes", ErrCorrupt)
	}
	for i := range terms {
		if x.termOff[i] >= x.termOff[i+1] {
			return fmt.Errorf("%w: term %d is empty or out of order", ErrCorrupt, i)
		}
		if i > 0 && string(x.termBlob[x.termOff[i-1]:x.termOff[i]]) >= string(x.termBlob[x.termOff[i]:x.termOff[i+1]]) {
			return fmt.Errorf("%w: vocabulary not strictly sorted at term %d", ErrCorrupt, i)
		}
	}
	if x.postOff[0] != 0 || x.postOff[len(x.postOff)-1] != uint64(len(x.postings)) {
		return fmt.Errorf("%w: postings offsets do not span the postings", ErrCorrupt)
	}
	for i := 1; i < len(x.postOff); i++ {
		if x.postOff[i] < x.postOff[i-1] {
			return fmt.Errorf("%w: postings offsets decrease at %d", ErrCorrupt, i)
		}
	}
	return x.checkPostings()
}

// checkPostings decodes every list once.
func (x *Lexical) checkPostings() error {
	last := make([]int32, x.n) // last term (+1) seen per document, for df
	for t := range x.df {
		df := uint32(0)
		for f := range NumFields {
			p := x.postings[x.postOff[t*NumFields+f]:x.postOff[t*NumFields+f+1]]
			d := int64(-1)
			for len(p) > 0 {
				v, n := binary.Uvarint(p)
				if n <= 0 {
					return fmt.Errorf("%w: term %d field %s: bad posting", ErrCorrupt, t, FieldNames[f])
				}
				p = p[n:]
				if v&1 != 0 {
					u, n := binary.Uvarint(p)
					if n <= 0 || u < 2 || u > 1<<31 {
						return fmt.Errorf("%w: term %d field %s: bad frequency", ErrCorrupt, t, FieldNames[f])
					}
					p = p[n:]
				}
				d += int64(v>>1) + 1
				if d >= int64(x.n) {
					return fmt.Errorf("%w: term %d field %s: document %d of %d", ErrCorrupt, t, FieldNames[f], d, x.n)
				}
				if last[d] != int32(t+1) {
					last[d] = int32(t + 1)
					df++
				}
			}
		}
		if df != x.df[t] || df == 0 {
			return fmt.Errorf("%w: term %d: document frequency %d, postings hold %d", ErrCorrupt, t, x.df[t], df)
		}
	}
	return nil
}
