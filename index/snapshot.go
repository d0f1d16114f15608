package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"

	"github.com/recsys-dev/recsys/internal/atomicfile"
)

// Snapshot layout (all integers little-endian):
//
//	header, 32 bytes:
//	  [0:8)   magic "RSEXACT\x00"
//	  [8:12)  format version (1)
//	  [12:16) dim
//	  [16:24) count (number of vectors)
//	  [24:28) number of sections
//	  [28:32) CRC32C of bytes [0:28)
//	then each section:
//	  [0:4)   kind (1 = vectors)
//	  [4:8)   flags, must be 0
//	  [8:16)  payload length in bytes
//	  payload
//	  CRC32C of the section header and payload, 4 bytes
//
// Version 1 holds exactly one vectors section: count*dim float32 values,
// row-major. Sections carry a kind so later versions can add some (norms,
// quantised codes) without a new framing; a reader refuses kinds it does not
// know rather than guess.
const (
	snapshotMagic   = "RSEXACT\x00"
	snapshotVersion = 1
	headerSize      = 32
	sectionHdrSize  = 16
	crcSize         = 4

	sectionVectors = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors a snapshot decode wraps, for errors.Is; the message adds where.
var (
	ErrEmptySnapshot = errors.New("snapshot is empty")
	ErrTruncated     = errors.New("snapshot is truncated")
	ErrBadMagic      = errors.New("not an exact index snapshot")
	ErrVersion       = errors.New("unsupported snapshot version")
	ErrChecksum      = errors.New("snapshot checksum mismatch")
	ErrCorrupt       = errors.New("snapshot is corrupt")
)

// WriteTo writes the index in the snapshot format. It implements
// io.WriterTo.
func (e *Exact) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	var hdr [headerSize]byte
	copy(hdr[0:8], snapshotMagic)
	binary.LittleEndian.PutUint32(hdr[8:], snapshotVersion)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(e.dim))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(e.n))
	binary.LittleEndian.PutUint32(hdr[24:], 1)
	binary.LittleEndian.PutUint32(hdr[28:], crc32.Checksum(hdr[:28], castagnoli))
	if _, err := cw.Write(hdr[:]); err != nil {
		return cw.n, err
	}

	var sh [sectionHdrSize]byte
	binary.LittleEndian.PutUint32(sh[0:], sectionVectors)
	binary.LittleEndian.PutUint64(sh[8:], uint64(len(e.vecs))*4)
	crc := crc32.Update(0, castagnoli, sh[:])
	if _, err := cw.Write(sh[:]); err != nil {
		return cw.n, err
	}
	// Encode in chunks: one buffer for a whole catalog would double memory.
	buf := make([]byte, 0, 64<<10)
	for i, v := range e.vecs {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if len(buf) == cap(buf) || i == len(e.vecs)-1 {
			crc = crc32.Update(crc, castagnoli, buf)
			if _, err := cw.Write(buf); err != nil {
				return cw.n, err
			}
			buf = buf[:0]
		}
	}
	var sum [crcSize]byte
	binary.LittleEndian.PutUint32(sum[:], crc)
	_, err := cw.Write(sum[:])
	return cw.n, err
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

// WriteFile writes a snapshot to path atomically: a temporary file in the
// same directory, fsynced, renamed over path, and the directory fsynced so
// the rename itself survives a crash.
func (e *Exact) WriteFile(path string) error {
	err := atomicfile.Write(path, func(w io.Writer) error {
		_, err := e.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("write index snapshot: %w", err)
	}
	return nil
}

// LoadExact reads and verifies a snapshot written by WriteFile.
func LoadExact(path string) (*Exact, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load index snapshot: %w", err)
	}
	e, err := DecodeExact(b)
	if err != nil {
		return nil, fmt.Errorf("load index snapshot %s: %w", path, err)
	}
	return e, nil
}

// DecodeExact decodes a snapshot held in memory, verifying magic, version,
// every checksum and every size before it allocates for the vectors. The
// result does not alias b.
func DecodeExact(b []byte) (*Exact, error) {
	if len(b) == 0 {
		return nil, ErrEmptySnapshot
	}
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: header needs %d bytes, have %d", ErrTruncated, headerSize, len(b))
	}
	if string(b[0:8]) != snapshotMagic {
		return nil, fmt.Errorf("%w: magic %q", ErrBadMagic, b[0:8])
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
	want := dim * count * 4 // cannot overflow: < 2^16 * 2^31 * 4

	var vecs []float32
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
			return nil, fmt.Errorf("%w: section %d crc %08x, computed %08x", ErrChecksum, s, got, sum)
		}
		if flags != 0 {
			return nil, fmt.Errorf("%w: section %d has flags %#x", ErrCorrupt, s, flags)
		}
		payload := b[off+sectionHdrSize : end]
		switch kind {
		case sectionVectors:
			if vecs != nil {
				return nil, fmt.Errorf("%w: second vectors section (%d)", ErrCorrupt, s)
			}
			if size != want {
				return nil, fmt.Errorf("%w: vectors section is %d bytes, want %d (dim %d x count %d x 4)", ErrCorrupt, size, want, dim, count)
			}
			vecs = make([]float32, dim*count)
			for i := range vecs {
				vecs[i] = math.Float32frombits(binary.LittleEndian.Uint32(payload[4*i:]))
			}
		default:
			return nil, fmt.Errorf("%w: section %d has unknown kind %d", ErrCorrupt, s, kind)
		}
		off = end + crcSize
	}
	if off != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the last section", ErrCorrupt, len(b)-off)
	}
	if vecs == nil {
		return nil, fmt.Errorf("%w: no vectors section", ErrCorrupt)
	}
	e, err := NewExact(int(dim), vecs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return e, nil
}
