package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func encode(t testing.TB, e *Exact) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := e.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// reheader recomputes the header checksum after a test edits the header,
// so the decoder gets past the checksum to the check under test.
func reheader(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

func TestExact_WriteFile(t *testing.T) {
	e := mustExact(t, 48, randomUnit(1, 777, 48))
	dir := t.TempDir()
	path := filepath.Join(dir, "index.exact")
	if err := os.WriteFile(path, []byte("old contents"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the snapshot", len(entries))
	}
	got, err := LoadExact(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Dim() != e.Dim() || got.Len() != e.Len() || !slices.Equal(got.vecs, e.vecs) {
		t.Fatal("loaded index differs")
	}
	q := randomUnit(2, 1, 48)
	if !slices.Equal(got.Search(q, 10, nil), e.Search(q, 10, nil)) {
		t.Error("loaded index answers differently")
	}
	if _, err := LoadExact(filepath.Join(dir, "absent")); err == nil {
		t.Error("loading a missing file succeeded")
	}
	if err := e.WriteFile(filepath.Join(dir, "no-such-dir", "x")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestDecodeExact(t *testing.T) {
	good := encode(t, mustExact(t, 16, gridUnit(3, 10)))
	const payloadStart = headerSize + sectionHdrSize
	edit := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	tests := []struct {
		name    string
		data    []byte
		wantErr error
		wantMsg string
	}{
		{name: "empty", data: nil, wantErr: ErrEmptySnapshot},
		{name: "short header", data: good[:20], wantErr: ErrTruncated, wantMsg: "header needs 32 bytes, have 20"},
		{name: "bad magic", data: edit(func(b []byte) []byte { b[0] = 'X'; return b }), wantErr: ErrBadMagic},
		{name: "header bit flip", data: edit(func(b []byte) []byte { b[13] ^= 1; return b }), wantErr: ErrChecksum, wantMsg: "header crc"},
		{name: "future version", data: edit(func(b []byte) []byte { b[8] = 2; return reheader(b) }), wantErr: ErrVersion, wantMsg: "2 (this build reads 1)"},
		{name: "payload bit flip", data: edit(func(b []byte) []byte { b[payloadStart+40] ^= 0x10; return b }), wantErr: ErrChecksum, wantMsg: "section 0 crc"},
		{name: "stored crc flip", data: edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), wantErr: ErrChecksum},
		{name: "truncated section header", data: good[:headerSize+8], wantErr: ErrTruncated, wantMsg: "section 0 header"},
		{name: "truncated payload", data: good[:len(good)-100], wantErr: ErrTruncated, wantMsg: "declares 640 payload bytes"},
		{name: "missing crc", data: good[:len(good)-2], wantErr: ErrTruncated},
		{name: "count disagrees with payload", data: edit(func(b []byte) []byte { b[16] = 9; return reheader(b) }), wantErr: ErrCorrupt, wantMsg: "vectors section is 640 bytes, want 576"},
		{name: "zero dim", data: edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 0); return reheader(b) }), wantErr: ErrCorrupt, wantMsg: "dim 0"},
		{name: "zero sections", data: reheader(slices.Concat(good[:24], []byte{0, 0, 0, 0, 0, 0, 0, 0})), wantErr: ErrCorrupt, wantMsg: "no vectors section"},
		{name: "trailing bytes", data: slices.Concat(good, []byte{1, 2, 3}), wantErr: ErrCorrupt, wantMsg: "3 bytes after the last section"},
		{name: "more sections than present", data: edit(func(b []byte) []byte { b[24] = 2; return reheader(b) }), wantErr: ErrTruncated, wantMsg: "section 1 header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeExact(tt.data)
			if e != nil || !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeExact = %v, %v; want error %v", e, err, tt.wantErr)
			}
			if tt.wantMsg != "" && !bytes.Contains([]byte(err.Error()), []byte(tt.wantMsg)) {
				t.Errorf("error %q lacks %q", err, tt.wantMsg)
			}
		})
	}
	t.Run("every truncation is refused", func(t *testing.T) {
		for n := range len(good) {
			if _, err := DecodeExact(good[:n]); err == nil {
				t.Fatalf("decoding the first %d of %d bytes succeeded", n, len(good))
			}
		}
	})
	t.Run("every single bit flip is refused", func(t *testing.T) {
		for i := range len(good) {
			b := slices.Clone(good)
			b[i] ^= 0x04
			if _, err := DecodeExact(b); err == nil {
				t.Fatalf("a flipped bit at byte %d went unnoticed", i)
			}
		}
	})
}

func TestLoadExact_EmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadExact(path); !errors.Is(err, ErrEmptySnapshot) {
		t.Fatalf("error = %v, want ErrEmptySnapshot", err)
	}
}

// FuzzDecodeExact: arbitrary bytes never panic, and whatever decodes
// re-encodes to exactly the same bytes (the format has one encoding).
func FuzzDecodeExact(f *testing.F) {
	f.Add(encode(f, mustExact(f, 16, gridUnit(1, 3))))
	f.Add(encode(f, mustExact(f, 2, []float32{1, 0, 0, 1})))
	f.Add([]byte(magicExact))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeExact(data)
		if err != nil {
			if e != nil {
				t.Fatal("index returned with an error")
			}
			return
		}
		if again := encode(t, e); !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs: %d bytes in, %d out", len(data), len(again))
		}
	})
}
