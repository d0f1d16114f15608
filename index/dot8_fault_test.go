//go:build linux && amd64

package index

import (
	"syscall"
	"testing"
	"unsafe"
)

// TestDot8_NoReadPastEnd puts the codes and the query flush against an
// inaccessible page: a kernel that loaded a byte past either would fault.
func TestDot8_NoReadPastEnd(t *testing.T) {
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 4*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Skip("mmap:", err)
	}
	defer syscall.Munmap(mem)
	if err := syscall.Mprotect(mem[page:2*page], syscall.PROT_NONE); err != nil {
		t.Skip("mprotect:", err)
	}
	if err := syscall.Mprotect(mem[3*page:], syscall.PROT_NONE); err != nil {
		t.Skip("mprotect:", err)
	}
	for n := 1; n <= 100; n++ {
		xb := mem[page-n : page]
		qb := mem[3*page-2*n : 3*page]
		x := unsafe.Slice((*int8)(unsafe.Pointer(&xb[0])), n)
		q := unsafe.Slice((*int16)(unsafe.Pointer(&qb[0])), n)
		var want int32
		for i := range x {
			x[i], q[i] = int8(i%7-3), int16(i*3-50)
			want += int32(x[i]) * int32(q[i])
		}
		if got := dot8(q, x); got != want {
			t.Fatalf("n=%d: dot8 = %d, want %d", n, got, want)
		}
	}
}
