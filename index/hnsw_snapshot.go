package index

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// paramsSize is the hnsw parameters section: m, ef_construction,
// ef_search, entry point (uint32 each), exact_below (float64).
const paramsSize = 24

// The quantiser section (int8 indexes only):
//
//	[0:4)   scheme: 1, int8 codes with a float32 scale per dimension
//	[4:8)   rescore (Config.Rescore)
//	[8:12)  pad: zero bytes at the end, < 64
//	[12:16) reserved, 0
//	[16:16+4*dim) the scales
//	pad zero bytes, so that the codes section that follows starts on a
//	64-byte boundary in the file and a code row spans the fewest lines
const (
	quantHdrSize = 16
	quantInt8    = 1
	codesAlign   = 64
)

// WriteTo writes the graph in the snapshot format. It implements
// io.WriterTo. Vectors and links are written from memory as they are, so
// a snapshot costs no second copy of the index. The 4-byte sections come
// first, the byte sections last, so that every payload is aligned for a
// mapped load.
func (h *HNSW) WriteTo(w io.Writer) (int64, error) {
	var p [paramsSize]byte
	binary.LittleEndian.PutUint32(p[0:], uint32(h.m))
	binary.LittleEndian.PutUint32(p[4:], uint32(h.efConstr))
	binary.LittleEndian.PutUint32(p[8:], uint32(h.efSearch))
	binary.LittleEndian.PutUint32(p[12:], uint32(h.entry))
	binary.LittleEndian.PutUint64(p[16:], math.Float64bits(h.exactBelow))
	secs := []section{
		{sectionParams, p[:]},
		{sectionVectors, f32Bytes(h.vecs)},
		{sectionLinks0, i32Bytes(h.links0)},
		{sectionUpper, i32Bytes(h.upper)},
	}
	if h.codes != nil {
		off := headerSize
		for _, s := range secs {
			off += sectionHdrSize + len(s.data) + crcSize
		}
		// The codes payload follows this section's header, payload and
		// checksum and its own header.
		unpadded := off + sectionHdrSize + quantHdrSize + 4*h.dim + crcSize + sectionHdrSize
		pad := (codesAlign - unpadded%codesAlign) % codesAlign
		q := make([]byte, quantHdrSize, quantHdrSize+4*h.dim+pad)
		binary.LittleEndian.PutUint32(q[0:], quantInt8)
		binary.LittleEndian.PutUint32(q[4:], uint32(h.rescore))
		binary.LittleEndian.PutUint32(q[8:], uint32(pad))
		q = append(q, f32Bytes(h.quant.scale)...)
		q = append(q, make([]byte, pad)...)
		secs = append(secs, section{sectionQuant, q}, section{sectionCodes, i8Bytes(h.codes)})
	}
	secs = append(secs, section{sectionLevels, h.levels})
	return writeSnapshot(w, magicHNSW, h.dim, h.n, secs)
}

// WriteFile writes a snapshot to path atomically.
func (h *HNSW) WriteFile(path string) error { return writeFile(path, h) }

// LoadHNSW reads and verifies a snapshot written by (*HNSW).WriteFile.
// The graph aliases the file's memory map (see Load); Close releases it.
func LoadHNSW(path string) (*HNSW, error) {
	return loadFile(path, func(b []byte) (*HNSW, error) { return decodeHNSW(b, true) },
		func(h *HNSW, m *mapping) bool { h.mapped = m; return true })
}

// DecodeHNSW decodes a graph snapshot held in memory. Beyond the framing
// checks it verifies the graph itself (every link in range and at a level
// its target has, counts within the caps, the entry point on the top
// layer), because a search trusts those without bounds checks of its own.
// The result does not alias b.
func DecodeHNSW(b []byte) (*HNSW, error) { return decodeHNSW(b, false) }

func decodeHNSW(b []byte, alias bool) (*HNSW, error) {
	s, err := parseSnapshotOpt(b, magicHNSW,
		[]uint32{sectionParams, sectionVectors, sectionLevels, sectionLinks0, sectionUpper},
		[]uint32{sectionQuant, sectionCodes})
	if err != nil {
		return nil, err
	}
	p := s.sections[sectionParams]
	if len(p) != paramsSize {
		return nil, fmt.Errorf("%w: parameters section is %d bytes, want %d", ErrCorrupt, len(p), paramsSize)
	}
	cfg := Config{
		Backend:        BackendHNSW,
		M:              int(binary.LittleEndian.Uint32(p[0:])),
		EfConstruction: int(binary.LittleEndian.Uint32(p[4:])),
		EfSearch:       int(binary.LittleEndian.Uint32(p[8:])),
		ExactBelow:     math.Float64frombits(binary.LittleEndian.Uint64(p[16:])),
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: parameters: %w", ErrCorrupt, err)
	}
	entry := binary.LittleEndian.Uint32(p[12:])
	if entry >= uint32(s.count) {
		return nil, fmt.Errorf("%w: entry point %d outside 0..%d", ErrCorrupt, entry, s.count-1)
	}
	n := s.count
	levels := s.sections[sectionLevels]
	if len(levels) != n {
		return nil, fmt.Errorf("%w: levels section is %d bytes, want %d (one per vector)", ErrCorrupt, len(levels), n)
	}
	for i, l := range levels {
		if l >= maxLevels {
			return nil, fmt.Errorf("%w: node %d has level %d, max %d", ErrCorrupt, i, l, maxLevels-1)
		}
	}
	// Check the link sections' sizes before allocating anything large.
	m0 := 2 * cfg.M
	if want := uint64(n) * uint64(m0+1) * 4; uint64(len(s.sections[sectionLinks0])) != want {
		return nil, fmt.Errorf("%w: layer-0 links section is %d bytes, want %d", ErrCorrupt, len(s.sections[sectionLinks0]), want)
	}
	vecs, err := s.vectors(alias)
	if err != nil {
		return nil, err
	}
	if _, err := NewExact(s.dim, vecs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	h := newHNSW(cfg, s.dim, n, vecs)
	h.levels = bytesView(levels, alias)
	if err := h.layout(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if want := uint64(h.upperLen()) * 4; uint64(len(s.sections[sectionUpper])) != want {
		return nil, fmt.Errorf("%w: upper links section is %d bytes, want %d for these levels", ErrCorrupt, len(s.sections[sectionUpper]), want)
	}
	if int(h.levels[entry]) != h.maxLevel {
		return nil, fmt.Errorf("%w: entry point %d is on level %d, the top is %d", ErrCorrupt, entry, h.levels[entry], h.maxLevel)
	}
	h.entry = int32(entry)
	if err := h.decodeQuant(s, alias); err != nil {
		return nil, err
	}
	h.links0 = i32View(s.sections[sectionLinks0], alias)
	h.upper = i32View(s.sections[sectionUpper], alias)
	if err := h.checkLinks(); err != nil {
		return nil, err
	}
	return h, nil
}

// checkLinks verifies every link block: the count within its cap, every
// id a node on that level.
func (h *HNSW) checkLinks() error {
	// Layer 0 first in one pass over the flat array: every node is on it.
	stride := h.m0 + 1
	for id := range h.n {
		l := h.links0[id*stride : (id+1)*stride]
		if c := l[0]; c < 0 || int(c) > h.m0 {
			return fmt.Errorf("%w: node %d level 0 has %d links, max %d", ErrCorrupt, id, c, h.m0)
		}
		for _, e := range l[1 : 1+l[0]] {
			if uint32(e) >= uint32(h.n) {
				return fmt.Errorf("%w: node %d level 0 links to %d, not a node on that level", ErrCorrupt, id, e)
			}
		}
	}
	for id := range int32(h.n) {
		for lc := 1; lc <= int(h.levels[id]); lc++ {
			l := h.links(id, lc)
			if c := l[0]; c < 0 || int(c) > len(l)-1 {
				return fmt.Errorf("%w: node %d level %d has %d links, max %d", ErrCorrupt, id, lc, c, len(l)-1)
			}
			for _, e := range l[1 : 1+l[0]] {
				if e < 0 || int(e) >= h.n || int(h.levels[e]) < lc {
					return fmt.Errorf("%w: node %d level %d links to %d, not a node on that level", ErrCorrupt, id, lc, e)
				}
			}
		}
	}
	return nil
}

// decodeQuant reads the quantiser and the codes, which come together or
// not at all (a float32 index, or any snapshot of an earlier version).
func (h *HNSW) decodeQuant(s *snapshot, alias bool) error {
	q, hasQ := s.sections[sectionQuant]
	c, hasC := s.sections[sectionCodes]
	switch {
	case !hasQ && !hasC:
		return nil
	case !hasQ || !hasC:
		return fmt.Errorf("%w: a quantiser section needs a codes section and the reverse", ErrCorrupt)
	}
	if len(q) < quantHdrSize {
		return fmt.Errorf("%w: quantiser section is %d bytes, want at least %d", ErrCorrupt, len(q), quantHdrSize)
	}
	scheme := binary.LittleEndian.Uint32(q[0:])
	rescore := binary.LittleEndian.Uint32(q[4:])
	pad := binary.LittleEndian.Uint32(q[8:])
	switch {
	case scheme != quantInt8:
		return fmt.Errorf("%w: unknown quantisation scheme %d", ErrCorrupt, scheme)
	case rescore > maxRescore:
		return fmt.Errorf("%w: rescore %d above %d", ErrCorrupt, rescore, maxRescore)
	case binary.LittleEndian.Uint32(q[12:]) != 0:
		return fmt.Errorf("%w: quantiser reserved field is not 0", ErrCorrupt)
	case pad >= codesAlign || uint64(len(q)) != uint64(quantHdrSize)+4*uint64(h.dim)+uint64(pad):
		return fmt.Errorf("%w: quantiser section is %d bytes with %d padding, want %d plus padding under %d", ErrCorrupt, len(q), pad, quantHdrSize+4*h.dim, codesAlign)
	case bytes.ContainsFunc(q[len(q)-int(pad):], func(r rune) bool { return r != 0 }):
		return fmt.Errorf("%w: quantiser padding is not zero", ErrCorrupt)
	case s.offsets[sectionCodes]%codesAlign != 0 || s.offsets[sectionCodes] != s.offsets[sectionQuant]+len(q)+crcSize+sectionHdrSize:
		// The one place the writer puts them: the padding is then unique.
		return fmt.Errorf("%w: codes section does not follow the quantiser on a %d-byte boundary", ErrCorrupt, codesAlign)
	case uint64(len(c)) != uint64(h.n)*uint64(h.dim):
		return fmt.Errorf("%w: codes section is %d bytes, want %d (dim %d x count %d)", ErrCorrupt, len(c), uint64(h.n)*uint64(h.dim), h.dim, h.n)
	case bytes.IndexByte(c, 0x80) >= 0:
		return fmt.Errorf("%w: code -128 at %d (codes are -127..127)", ErrCorrupt, bytes.IndexByte(c, 0x80))
	}
	scale := decodeF32(q[quantHdrSize : quantHdrSize+4*h.dim])
	for j, x := range scale {
		if !(x >= 0 && x <= math.MaxFloat32) {
			return fmt.Errorf("%w: quantiser scale %d is %v", ErrCorrupt, j, x)
		}
	}
	h.quant = &quantizer{scale: scale}
	h.codes = i8View(c, alias)
	h.rescore = int(rescore)
	return nil
}
