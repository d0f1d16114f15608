package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"unsafe"

	"github.com/recsys-dev/recsys/internal/atomicfile"
)

// Snapshot layout, shared by every backend (all integers little-endian):
//
//	header, 32 bytes:
//	  [0:8)   magic: "RSEXACT\x00", "RSHNSW\x00\x00" or "RSCODER\x00"
//	  [8:12)  format version (1)
//	  [12:16) dim
//	  [16:24) count (number of vectors)
//	  [24:28) number of sections
//	  [28:32) CRC32C of bytes [0:28)
//	then each section:
//	  [0:4)   kind
//	  [4:8)   flags, must be 0
//	  [8:16)  payload length in bytes
//	  payload
//	  CRC32C of the section header and payload, 4 bytes
//
// Section kinds: 1 vectors (count*dim float32, row-major) in every backend;
// hnsw adds 2 parameters, 3 levels (one byte per node), 4 layer-0 links,
// 5 upper-layer links (int32), and with int8 quantisation 7 the quantiser
// (see hnsw_snapshot.go) and 8 the codes (count*dim int8); coder-hnsw adds
// 6, the library's own export. Item ids are the vectors' positions, the
// contract every backend keeps, so no id table is stored. A reader refuses
// kinds it does not know rather than guess, and checks every size before
// it allocates.
//
// Sections may come in any order. Writers put those of 4-byte elements
// first: the header and the section framing are multiples of 4 bytes, so
// their payloads are then 4-byte aligned in the file and a memory-mapped
// file is used in place (see Load). The int8 codes are 64-byte aligned
// (one cache line) by padding inside the quantiser section. Earlier
// snapshots wrote the levels before the links; they load, copying the
// links when that left them misaligned.
const (
	snapshotVersion = 1
	headerSize      = 32
	sectionHdrSize  = 16
	crcSize         = 4

	magicExact = "RSEXACT\x00"
	magicHNSW  = "RSHNSW\x00\x00"
	magicCoder = "RSCODER\x00"

	sectionVectors = 1
	sectionParams  = 2
	sectionLevels  = 3
	sectionLinks0  = 4
	sectionUpper   = 5
	sectionCoder   = 6
	sectionQuant   = 7
	sectionCodes   = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors a snapshot decode wraps, for errors.Is; the message adds where.
var (
	ErrEmptySnapshot = errors.New("snapshot is empty")
	ErrTruncated     = errors.New("snapshot is truncated")
	ErrBadMagic      = errors.New("not an index snapshot of the expected kind")
	ErrVersion       = errors.New("unsupported snapshot version")
	ErrChecksum      = errors.New("snapshot checksum mismatch")
	ErrCorrupt       = errors.New("snapshot is corrupt")
)

// littleEndian is true on the platforms this runs on; there the in-memory
// bytes of []float32 and []int32 are the file's, and copy is the codec.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// section is one payload to write.
type section struct {
	kind uint32
	data []byte
}

func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
	}
	b := make([]byte, 0, len(v)*4)
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func i32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
	}
	b := make([]byte, 0, len(v)*4)
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

func i8Bytes(v []int8) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v))
}

// decodeF32 copies a little-endian payload into a new slice.
func decodeF32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	if littleEndian && len(v) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(b)), b)
		return v
	}
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func decodeI32(b []byte) []int32 {
	v := make([]int32, len(b)/4)
	if littleEndian && len(v) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(b)), b)
		return v
	}
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// writeSnapshot writes the header and sections.
func writeSnapshot(w io.Writer, magic string, dim, count int, secs []section) (int64, error) {
	cw := &countWriter{w: w}
	var hdr [headerSize]byte
	copy(hdr[0:8], magic)
	binary.LittleEndian.PutUint32(hdr[8:], snapshotVersion)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(dim))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(count))
	binary.LittleEndian.PutUint32(hdr[24:], uint32(len(secs)))
	binary.LittleEndian.PutUint32(hdr[28:], crc32.Checksum(hdr[:28], castagnoli))
	if _, err := cw.Write(hdr[:]); err != nil {
		return cw.n, err
	}
	for _, s := range secs {
		var sh [sectionHdrSize]byte
		binary.LittleEndian.PutUint32(sh[0:], s.kind)
		binary.LittleEndian.PutUint64(sh[8:], uint64(len(s.data)))
		crc := crc32.Update(crc32.Update(0, castagnoli, sh[:]), castagnoli, s.data)
		var sum [crcSize]byte
		binary.LittleEndian.PutUint32(sum[:], crc)
		for _, p := range [][]byte{sh[:], s.data, sum[:]} {
			if _, err := cw.Write(p); err != nil {
				return cw.n, err
			}
		}
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeFile writes a snapshot to path atomically: a temporary file in the
// same directory, fsynced, renamed over path, and the directory fsynced so
// the rename itself survives a crash.
func writeFile(path string, w io.WriterTo) error {
	err := atomicfile.Write(path, func(f io.Writer) error {
		_, err := w.WriteTo(f)
		return err
	})
	if err != nil {
		return fmt.Errorf("write index snapshot: %w", err)
	}
	return nil
}

// snapshot is a verified, framed file: its header fields and the payload
// of each section (aliasing the input) and its offset in the file, by
// kind.
type snapshot struct {
	dim, count int
	sections   map[uint32][]byte
	offsets    map[uint32]int
}

// parseSnapshot verifies magic, version, every checksum and every size.
// Each kind in known must appear exactly once; any other kind is refused.
func parseSnapshot(b []byte, magic string, known ...uint32) (*snapshot, error) {
	return parseSnapshotOpt(b, magic, known, nil)
}

// parseSnapshotOpt is parseSnapshot that also accepts, at most once each,
// the kinds in optional.
func parseSnapshotOpt(b []byte, magic string, known, optional []uint32) (*snapshot, error) {
	if len(b) == 0 {
		return nil, ErrEmptySnapshot
	}
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: header needs %d bytes, have %d", ErrTruncated, headerSize, len(b))
	}
	if string(b[0:8]) != magic {
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrBadMagic, b[0:8], magic)
	}
	if got, want := binary.LittleEndian.Uint32(b[28:]), crc32.Checksum(b[:28], castagnoli); got != want {
		return nil, fmt.Errorf("%w: header crc %08x, computed %08x", ErrChecksum, got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != snapshotVersion {
		return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, v, snapshotVersion)
	}
	dim := uint64(binary.LittleEndian.Uint32(b[12:]))
	count := binary.LittleEndian.Uint64(b[16:])
	nsec := binary.LittleEndian.Uint32(b[24:])
	if dim == 0 || dim > MaxDim {
		return nil, fmt.Errorf("%w: dim %d outside 1..%d", ErrCorrupt, dim, MaxDim)
	}
	if count == 0 || count > math.MaxInt32 {
		return nil, fmt.Errorf("%w: count %d outside 1..%d", ErrCorrupt, count, math.MaxInt32)
	}
	snap := &snapshot{dim: int(dim), count: int(count), sections: map[uint32][]byte{}, offsets: map[uint32]int{}}
	off := headerSize
	for s := range nsec {
		rest := len(b) - off
		if rest < sectionHdrSize {
			return nil, fmt.Errorf("%w: section %d header at offset %d needs %d bytes, have %d", ErrTruncated, s, off, sectionHdrSize, rest)
		}
		kind := binary.LittleEndian.Uint32(b[off:])
		flags := binary.LittleEndian.Uint32(b[off+4:])
		size := binary.LittleEndian.Uint64(b[off+8:])
		if size > uint64(rest-sectionHdrSize) || uint64(rest-sectionHdrSize)-size < crcSize {
			return nil, fmt.Errorf("%w: section %d at offset %d declares %d payload bytes, %d remain", ErrTruncated, s, off, size, rest-sectionHdrSize)
		}
		end := off + sectionHdrSize + int(size)
		if got, sum := binary.LittleEndian.Uint32(b[end:]), crc32.Checksum(b[off:end], castagnoli); got != sum {
			return nil, fmt.Errorf("%w: section %d crc %08x, computed %08x (%s section)", ErrChecksum, s, got, sum, sectionName(kind))
		}
		if flags != 0 {
			return nil, fmt.Errorf("%w: section %d has flags %#x", ErrCorrupt, s, flags)
		}
		ok := false
		for _, k := range known {
			ok = ok || k == kind
		}
		for _, k := range optional {
			ok = ok || k == kind
		}
		if !ok {
			return nil, fmt.Errorf("%w: section %d has unknown kind %d", ErrCorrupt, s, kind)
		}
		if _, dup := snap.sections[kind]; dup {
			return nil, fmt.Errorf("%w: second %s section (%d)", ErrCorrupt, sectionName(kind), s)
		}
		snap.sections[kind] = b[off+sectionHdrSize : end]
		snap.offsets[kind] = off + sectionHdrSize
		off = end + crcSize
	}
	if off != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the last section", ErrCorrupt, len(b)-off)
	}
	for _, k := range known {
		if _, ok := snap.sections[k]; !ok {
			return nil, fmt.Errorf("%w: no %s section", ErrCorrupt, sectionName(k))
		}
	}
	return snap, nil
}

func sectionName(kind uint32) string {
	switch kind {
	case sectionVectors:
		return "vectors"
	case sectionParams:
		return "parameters"
	case sectionLevels:
		return "levels"
	case sectionLinks0:
		return "layer-0 links"
	case sectionUpper:
		return "upper links"
	case sectionCoder:
		return "coder-hnsw graph"
	case sectionQuant:
		return "quantiser"
	case sectionCodes:
		return "int8 codes"
	}
	return fmt.Sprintf("kind-%d", kind)
}

// vectors decodes the vectors section after checking its size, aliasing
// it if alias is set and alignment allows.
func (s *snapshot) vectors(alias bool) ([]float32, error) {
	p := s.sections[sectionVectors]
	if want := uint64(s.dim) * uint64(s.count) * 4; uint64(len(p)) != want {
		return nil, fmt.Errorf("%w: vectors section is %d bytes, want %d (dim %d x count %d x 4)", ErrCorrupt, len(p), want, s.dim, s.count)
	}
	return f32View(p, alias), nil
}

// WriteTo writes the index in the snapshot format. It implements
// io.WriterTo.
func (e *Exact) WriteTo(w io.Writer) (int64, error) {
	return writeSnapshot(w, magicExact, e.dim, e.n, []section{{sectionVectors, f32Bytes(e.vecs)}})
}

// WriteFile writes a snapshot to path atomically.
func (e *Exact) WriteFile(path string) error { return writeFile(path, e) }

// LoadExact reads and verifies a snapshot written by WriteFile. The index
// aliases the file's memory map (see Load); Close releases it.
func LoadExact(path string) (*Exact, error) {
	return loadFile(path, func(b []byte) (*Exact, error) { return decodeExact(b, true) },
		func(e *Exact, m *mapping) bool { e.mapped = m; return true })
}

// DecodeExact decodes a snapshot held in memory, verifying magic, version,
// every checksum and every size before it allocates for the vectors. The
// result does not alias b.
func DecodeExact(b []byte) (*Exact, error) { return decodeExact(b, false) }

func decodeExact(b []byte, alias bool) (*Exact, error) {
	s, err := parseSnapshot(b, magicExact, sectionVectors)
	if err != nil {
		return nil, err
	}
	vecs, err := s.vectors(alias)
	if err != nil {
		return nil, err
	}
	e, err := NewExact(s.dim, vecs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return e, nil
}
