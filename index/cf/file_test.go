package cf

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNeighbours_FileRoundTrip(t *testing.T) {
	n := randomNeighbours(t, rand.New(rand.NewPCG(1, 1)), 200, 15)
	path := filepath.Join(t.TempDir(), "neighbours.cf")
	if err := n.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadNeighbours(path, n.Len())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.offsets, n.offsets) || !slices.Equal(got.ids, n.ids) || !slices.Equal(got.sims, n.sims) {
		t.Fatal("loaded table differs from the written one")
	}
	if _, err := LoadNeighbours(path, n.Len()+1); !errors.Is(err, ErrMismatch) {
		t.Fatalf("load with the wrong item count: err = %v, want ErrMismatch", err)
	}
	if _, err := LoadFactors(path, n.Len()); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("load as factors: err = %v, want ErrBadMagic", err)
	}
}

func TestFactors_FileRoundTrip(t *testing.T) {
	f := randomFactors(t, rand.New(rand.NewPCG(2, 2)), 150, 12, 0.5, 7)
	path := filepath.Join(t.TempDir(), "factors.cf")
	if err := f.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFactors(path, f.Len())
	if err != nil {
		t.Fatal(err)
	}
	if got.Dim() != f.Dim() || got.Lambda() != f.Lambda() || got.Alpha() != f.Alpha() || !slices.Equal(got.y, f.y) || !slices.Equal(got.yty, f.yty) {
		t.Fatal("loaded factors differ from the written ones")
	}
	if _, err := LoadFactors(path, 7); !errors.Is(err, ErrMismatch) {
		t.Fatalf("load with the wrong item count: err = %v, want ErrMismatch", err)
	}
}

// testFiles are small valid files of both kinds with their decoders.
func testFiles(t testing.TB) []struct {
	name string
	data []byte
	read func([]byte) error
} {
	dir := t.TempDir()
	n := randomNeighbours(t, rand.New(rand.NewPCG(3, 3)), 12, 4)
	f := randomFactors(t, rand.New(rand.NewPCG(4, 4)), 9, 3, 1, 2)
	np, fp := filepath.Join(dir, "n"), filepath.Join(dir, "f")
	if err := n.WriteFile(np); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFile(fp); err != nil {
		t.Fatal(err)
	}
	nb, err1 := os.ReadFile(np)
	fb, err2 := os.ReadFile(fp)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return []struct {
		name string
		data []byte
		read func([]byte) error
	}{
		{"neighbours", nb, func(b []byte) error {
			_, err := readNeighbours(bytes.NewReader(b), int64(len(b)), 12)
			return err
		}},
		{"factors", fb, func(b []byte) error {
			_, err := readFactors(bytes.NewReader(b), int64(len(b)), 9)
			return err
		}},
	}
}

// TestRead_CorruptByte flips each byte of a valid file in turn: the
// checksums must catch every one.
func TestRead_CorruptByte(t *testing.T) {
	for _, c := range testFiles(t) {
		t.Run(c.name, func(t *testing.T) {
			if err := c.read(c.data); err != nil {
				t.Fatalf("valid file refused: %v", err)
			}
			for i := range c.data {
				b := slices.Clone(c.data)
				b[i] ^= 0x5a
				err := c.read(b)
				if err == nil {
					t.Fatalf("byte %d flipped: accepted", i)
				}
				if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrBadMagic) && !errors.Is(err, ErrVersion) {
					t.Fatalf("byte %d flipped: err = %v, want a checksum, magic or version error", i, err)
				}
			}
		})
	}
}

func TestRead_Truncated(t *testing.T) {
	for _, c := range testFiles(t) {
		t.Run(c.name, func(t *testing.T) {
			for n := range len(c.data) {
				if err := c.read(c.data[:n]); !errors.Is(err, ErrTruncated) {
					t.Fatalf("truncated to %d of %d bytes: err = %v, want ErrTruncated", n, len(c.data), err)
				}
			}
			if err := c.read(append(slices.Clone(c.data), 0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailing byte: err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestRead_HugeCounts rewrites the header's counts (with a valid header
// checksum) to values that would allocate gigabytes: the size check must
// refuse them first.
func TestRead_HugeCounts(t *testing.T) {
	files := testFiles(t)
	nb := slices.Clone(files[0].data)
	putU64(nb[16:], 1<<30)
	fb := slices.Clone(files[1].data)
	putU32(fb[16:], MaxDim)
	for _, b := range [][]byte{nb, fb} {
		resum(b)
	}
	if err := files[0].read(nb); !errors.Is(err, ErrTruncated) {
		t.Fatalf("neighbours with 2^30 entries: err = %v, want ErrTruncated", err)
	}
	if err := files[1].read(fb); !errors.Is(err, ErrTruncated) {
		t.Fatalf("factors with dim %d: err = %v, want ErrTruncated", MaxDim, err)
	}
}

// TestRead_BadContent edits the payload under valid checksums: the
// content checks must still refuse it, naming what is wrong.
func TestRead_BadContent(t *testing.T) {
	files := testFiles(t)
	cases := []struct {
		name string
		file int
		edit func(b []byte)
		want string
	}{
		{"neighbour out of range", 0, func(b []byte) { putU32(b[headerSize+13*4:], 99) }, "outside"},
		{"offsets decrease", 0, func(b []byte) { putU32(b[headerSize+4:], 1<<20) }, "offsets"},
		{"NaN factor", 1, func(b []byte) { putU32(b[headerSize+8:], 0x7fc00000) }, "factor"},
		{"lambda 0", 1, func(b []byte) { putU32(b[20:], 0) }, "lambda"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := slices.Clone(files[c.file].data)
			c.edit(b)
			resum(b)
			resumPayload(b)
			err := files[c.file].read(b)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrCorrupt naming %q", err, c.want)
			}
		})
	}
}

func FuzzRead(f *testing.F) {
	files := testFiles(f)
	for i, c := range files {
		f.Add(uint8(i), c.data)
	}
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		c := files[int(kind)%len(files)]
		_ = c.read(b) // must not panic or allocate beyond len(b)
		if len(b) >= headerSize+crcSize {
			// Also with valid checksums, to reach the content checks.
			b = slices.Clone(b)
			resum(b)
			resumPayload(b)
			_ = c.read(b)
		}
	})
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func putU64(b []byte, v uint64) {
	putU32(b, uint32(v))
	putU32(b[4:], uint32(v>>32))
}

// resum rewrites a header's checksum after an edit.
func resum(b []byte) {
	var crc [4]byte
	c := crcOf(b[:28])
	putU32(crc[:], c)
	copy(b[28:32], crc[:])
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// resumPayload rewrites the payload checksum after an edit.
func resumPayload(b []byte) {
	putU32(b[len(b)-crcSize:], crcOf(b[headerSize:len(b)-crcSize]))
}
