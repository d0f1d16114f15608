package cf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"unsafe"

	"github.com/recsys-dev/recsys/internal/atomicfile"
)

// File layouts (integers little-endian). Both are a fixed header with its
// own CRC32C, then one payload of 4-byte values with a CRC32C over it:
//
//	neighbours, header 32 bytes:
//	  [0:8)   magic "RSCFNBR\x00"
//	  [8:12)  format version (1)
//	  [12:16) items
//	  [16:24) entries (neighbour ids in the table)
//	  [24:28) reserved, 0
//	  [28:32) CRC32C of bytes [0:28)
//	  payload: offsets (items+1 int32), ids (entries int32), sims
//	  (entries float32); then CRC32C of the payload
//
//	factors, header 32 bytes:
//	  [0:8)   magic "RSCFALS\x00"
//	  [8:12)  format version (1)
//	  [12:16) items
//	  [16:20) dim
//	  [20:24) lambda, float32
//	  [24:28) alpha, float32
//	  [28:32) CRC32C of bytes [0:28)
//	  payload: items x dim float32, row-major; then CRC32C of the payload
//
// The header fixes the file's exact length, which a reader checks against
// the file before it allocates anything, so a corrupt count cannot make it
// allocate more than the file holds. What the payload says is then checked
// as the constructors check it (NewNeighbours, NewFactors).
const (
	fileVersion = 1
	headerSize  = 32
	crcSize     = 4

	magicNeighbours = "RSCFNBR\x00"
	magicFactors    = "RSCFALS\x00"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors a load wraps, for errors.Is; the message adds what and where.
var (
	ErrTruncated = errors.New("file is truncated")
	ErrBadMagic  = errors.New("not a collaborative-filtering file of the expected kind")
	ErrVersion   = errors.New("unsupported file version")
	ErrChecksum  = errors.New("checksum mismatch")
	ErrCorrupt   = errors.New("file is corrupt")
	ErrMismatch  = errors.New("file does not match the bundle")
)

// littleEndian is true on the platforms this runs on; there the in-memory
// bytes of []int32 and []float32 are the file's.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// le32 views 4-byte values as their bytes, little-endian on the platforms
// that matter; swap32 fixes the order elsewhere after a read or around a
// write.
func le32[T int32 | float32](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
}

func swap32(b []byte) {
	if littleEndian {
		return
	}
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
}

// writePayload writes the header with its checksum, then parts in
// little-endian order and their checksum.
func writePayload(w io.Writer, header []byte, parts ...[]byte) error {
	binary.LittleEndian.PutUint32(header[28:], crc32.Checksum(header[:28], castagnoli))
	if _, err := w.Write(header); err != nil {
		return err
	}
	var crc uint32
	for _, p := range parts {
		if !littleEndian {
			// A copy: the table may be serving requests meanwhile.
			p = append([]byte(nil), p...)
			swap32(p)
		}
		crc = crc32.Update(crc, castagnoli, p)
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	_, err := w.Write(binary.LittleEndian.AppendUint32(nil, crc))
	return err
}

// WriteFile writes the table, checksummed, fsynced, at path.
func (n *Neighbours) WriteFile(path string) error {
	h := make([]byte, headerSize)
	copy(h, magicNeighbours)
	binary.LittleEndian.PutUint32(h[8:], fileVersion)
	binary.LittleEndian.PutUint32(h[12:], uint32(n.Len()))
	binary.LittleEndian.PutUint64(h[16:], uint64(len(n.ids)))
	err := atomicfile.Write(path, func(w io.Writer) error {
		return writePayload(w, h, le32(n.offsets), le32(n.ids), le32(n.sims))
	})
	if err != nil {
		return fmt.Errorf("write neighbours: %w", err)
	}
	return nil
}

// WriteFile writes the factors and their parameters (lambda, alpha),
// checksummed, fsynced, at path.
func (f *Factors) WriteFile(path string) error {
	h := make([]byte, headerSize)
	copy(h, magicFactors)
	binary.LittleEndian.PutUint32(h[8:], fileVersion)
	binary.LittleEndian.PutUint32(h[12:], uint32(f.items))
	binary.LittleEndian.PutUint32(h[16:], uint32(f.dim))
	binary.LittleEndian.PutUint32(h[20:], math.Float32bits(f.lambda))
	binary.LittleEndian.PutUint32(h[24:], math.Float32bits(f.alpha))
	err := atomicfile.Write(path, func(w io.Writer) error {
		return writePayload(w, h, le32(f.y))
	})
	if err != nil {
		return fmt.Errorf("write factors: %w", err)
	}
	return nil
}

// LoadNeighbours reads and verifies a table WriteFile wrote; items is the
// bundle's item count, which the table must cover exactly.
func LoadNeighbours(path string, items int) (*Neighbours, error) {
	n, err := openAndRead(path, func(r io.Reader, size int64) (*Neighbours, error) {
		return readNeighbours(r, size, items)
	})
	if err != nil {
		return nil, fmt.Errorf("load neighbours %s: %w", path, err)
	}
	return n, nil
}

// LoadFactors reads and verifies a file WriteFile wrote; items is the
// bundle's item count.
func LoadFactors(path string, items int) (*Factors, error) {
	f, err := openAndRead(path, func(r io.Reader, size int64) (*Factors, error) {
		return readFactors(r, size, items)
	})
	if err != nil {
		return nil, fmt.Errorf("load factors %s: %w", path, err)
	}
	return f, nil
}

func openAndRead[T any](path string, read func(io.Reader, int64) (T, error)) (T, error) {
	var zero T
	fh, err := os.Open(path)
	if err != nil {
		return zero, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return zero, err
	}
	return read(fh, st.Size())
}

// readHeader reads and checks the header common to both formats.
func readHeader(r io.Reader, size int64, magic string) ([]byte, error) {
	h := make([]byte, headerSize)
	if size < headerSize+crcSize {
		return nil, fmt.Errorf("%w: %d bytes, less than a header", ErrTruncated, size)
	}
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrTruncated, err)
	}
	switch {
	case string(h[:8]) != magic:
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrBadMagic, h[:8], magic)
	case binary.LittleEndian.Uint32(h[28:]) != crc32.Checksum(h[:28], castagnoli):
		return nil, fmt.Errorf("%w: header", ErrChecksum)
	case binary.LittleEndian.Uint32(h[8:]) != fileVersion:
		return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, binary.LittleEndian.Uint32(h[8:]), fileVersion)
	}
	return h, nil
}

// checkSize compares the file's length with the one its header implies.
func checkSize(size int64, values uint64) error {
	want := uint64(headerSize+crcSize) + 4*values
	switch {
	case uint64(size) < want:
		return fmt.Errorf("%w: %d bytes, the header implies %d", ErrTruncated, size, want)
	case uint64(size) > want:
		return fmt.Errorf("%w: %d bytes, the header implies %d (trailing data)", ErrCorrupt, size, want)
	}
	return nil
}

// readPayload fills parts from r and checks the trailing checksum.
func readPayload(r io.Reader, parts ...[]byte) error {
	var crc uint32
	for _, p := range parts {
		if _, err := io.ReadFull(r, p); err != nil {
			return fmt.Errorf("%w: payload: %w", ErrTruncated, err)
		}
		crc = crc32.Update(crc, castagnoli, p)
		swap32(p)
	}
	var c [crcSize]byte
	if _, err := io.ReadFull(r, c[:]); err != nil {
		return fmt.Errorf("%w: payload checksum: %w", ErrTruncated, err)
	}
	if binary.LittleEndian.Uint32(c[:]) != crc {
		return fmt.Errorf("%w: payload", ErrChecksum)
	}
	return nil
}

// readNeighbours decodes a neighbours file of size bytes from r; items is
// the bundle's item count.
func readNeighbours(r io.Reader, size int64, items int) (*Neighbours, error) {
	h, err := readHeader(r, size, magicNeighbours)
	if err != nil {
		return nil, err
	}
	fileItems := uint64(binary.LittleEndian.Uint32(h[12:]))
	entries := binary.LittleEndian.Uint64(h[16:])
	switch {
	case binary.LittleEndian.Uint32(h[24:]) != 0:
		return nil, fmt.Errorf("%w: reserved header field is not 0", ErrCorrupt)
	case fileItems != uint64(items):
		return nil, fmt.Errorf("%w: table covers %d items, the bundle has %d", ErrMismatch, fileItems, items)
	case entries > math.MaxInt32:
		return nil, fmt.Errorf("%w: %d entries exceed int32 offsets", ErrCorrupt, entries)
	}
	if err := checkSize(size, fileItems+1+2*entries); err != nil {
		return nil, err
	}
	offsets := make([]int32, fileItems+1)
	ids := make([]int32, entries)
	sims := make([]float32, entries)
	if err := readPayload(r, le32(offsets), le32(ids), le32(sims)); err != nil {
		return nil, err
	}
	if err := checkNeighbours(items, offsets, ids, sims); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return &Neighbours{offsets: offsets, ids: ids, sims: sims}, nil
}

// readFactors decodes a factors file of size bytes from r; items is the
// bundle's item count.
func readFactors(r io.Reader, size int64, items int) (*Factors, error) {
	h, err := readHeader(r, size, magicFactors)
	if err != nil {
		return nil, err
	}
	fileItems := uint64(binary.LittleEndian.Uint32(h[12:]))
	dim := uint64(binary.LittleEndian.Uint32(h[16:]))
	lambda := math.Float32frombits(binary.LittleEndian.Uint32(h[20:]))
	alpha := math.Float32frombits(binary.LittleEndian.Uint32(h[24:]))
	switch {
	case fileItems != uint64(items):
		return nil, fmt.Errorf("%w: factors cover %d items, the bundle has %d", ErrMismatch, fileItems, items)
	case dim < 1 || dim > MaxDim:
		return nil, fmt.Errorf("%w: dim %d outside 1..%d", ErrCorrupt, dim, MaxDim)
	}
	if err := checkSize(size, fileItems*dim); err != nil {
		return nil, err
	}
	y := make([]float32, fileItems*dim)
	if err := readPayload(r, le32(y)); err != nil {
		return nil, err
	}
	if err := checkFactors(items, int(dim), y, lambda, alpha); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return newFactors(items, int(dim), y, lambda, alpha), nil
}
