package index

import (
	"fmt"
	"io"
	"os"
	"unsafe"
)

// readAll reads a snapshot into one heap buffer: the fallback where a
// file cannot be mapped. Go allocates large buffers page-aligned, so the
// decoders can alias this one too.
func readAll(f *os.File, path string) ([]byte, *mapping, error) {
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil, nil
}

// loadFile maps path and decodes it with decode, which may alias the
// bytes. The mapping is handed to the result through adopt, or released
// when decoding fails or the result does not alias it.
func loadFile[T any](path string, decode func(b []byte) (T, error), adopt func(T, *mapping) bool) (T, error) {
	var zero T
	b, m, err := mapFile(path)
	if err != nil {
		return zero, fmt.Errorf("load index snapshot: %w", err)
	}
	ix, err := decode(b)
	if err != nil {
		if m != nil {
			m.close()
		}
		return zero, fmt.Errorf("load index snapshot %s: %w", path, err)
	}
	if m != nil && !adopt(ix, m) {
		if err := m.close(); err != nil {
			return zero, fmt.Errorf("load index snapshot %s: %w", path, err)
		}
	}
	return ix, nil
}

// Section payloads are viewed in place when the platform's byte order is
// the file's and the payload is aligned for the element type; otherwise
// they are copied. Snapshots written by this version put every 4-byte
// section before the byte-sized ones, so all are aligned; older ones may
// have misaligned link sections, which are then copied.

func f32View(b []byte, alias bool) []float32 {
	if alias && littleEndian && len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
	}
	return decodeF32(b)
}

func i32View(b []byte, alias bool) []int32 {
	if alias && littleEndian && len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(b)/4)
	}
	return decodeI32(b)
}

func bytesView(b []byte, alias bool) []byte {
	if alias {
		return b
	}
	return append([]byte(nil), b...)
}

func i8View(b []byte, alias bool) []int8 {
	b = bytesView(b, alias)
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}
