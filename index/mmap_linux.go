//go:build linux

package index

import (
	"fmt"
	"math"
	"os"
	"syscall"
	"unsafe"
)

// mapping is a read-only shared memory map of a snapshot file. A loaded
// index aliases its vectors and links in it, so loading costs no copy and
// the pages are the kernel's page cache, shared by every process (and
// every generation of the server) that maps the same file.
//
// Snapshot files are replaced by rename, never rewritten in place, so a
// mapped file does not change under the index. (Truncating one would make
// reads past the new end fault.) A removed file's blocks stay allocated
// until it is unmapped.
type mapping struct {
	data []byte
}

// mapFile maps path read-only. MAP_POPULATE reads it in at once, since the
// checksums read every byte anyway and faulting page by page is slower. An
// empty file, or one the filesystem cannot map, is read into memory
// instead (m is then nil); the decoders alias that buffer just the same.
func mapFile(path string) (b []byte, m *mapping, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if size == 0 || !st.Mode().IsRegular() {
		return readAll(f, path)
	}
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("%s: %d bytes do not fit in memory", path, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return readAll(f, path)
	}
	return data, &mapping{data: data}, nil
}

func (m *mapping) close() error {
	if err := syscall.Munmap(m.data); err != nil {
		return fmt.Errorf("unmap index snapshot: %w", err)
	}
	return nil
}

// adviseHuge asks for transparent huge pages on the page-aligned interior
// of b; with collapse, at once (MADV_COLLAPSE, Linux 6.1+) rather than
// when khugepaged gets to it. Errors are ignored: it is only advice.
func adviseHuge(b []byte, collapse bool) {
	const huge = 2 << 20
	if len(b) < 2*huge {
		return
	}
	p := uintptr(unsafe.Pointer(&b[0]))
	lo := (p + huge - 1) &^ (huge - 1)
	hi := (p + uintptr(len(b))) &^ (huge - 1)
	if hi <= lo {
		return
	}
	r := b[lo-p : hi-p]
	syscall.Madvise(r, 14) // MADV_HUGEPAGE
	if collapse {
		syscall.Madvise(r, 25) // MADV_COLLAPSE
	}
}

// The graph walk reads rows scattered over arrays of hundreds of
// megabytes, and with 4 KiB pages nearly every row is also a TLB miss:
// at 1M x 128, a float32 walk step took 170 ns on 4 KiB pages and 107 ns
// on 2 MiB ones. So the build asks for transparent huge pages on what it
// walks. It is advice: where THP is off, nothing changes.

// hugeF32 advises huge pages on v, collapsing memory already touched.
func hugeF32(v []float32) {
	if len(v) > 0 {
		adviseHuge(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4), true)
	}
}

// makeCodes allocates n int8 codes on huge pages where the kernel can.
func makeCodes(n int) []int8 {
	c := make([]int8, n)
	if n > 0 {
		adviseHuge(unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), n), false)
	}
	return c
}

// makeLinks allocates n link words on huge pages where the kernel can.
func makeLinks(n int) []int32 {
	l := make([]int32, n)
	if n > 0 {
		adviseHuge(unsafe.Slice((*byte)(unsafe.Pointer(&l[0])), n*4), false)
	}
	return l
}
