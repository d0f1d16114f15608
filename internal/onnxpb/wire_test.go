package onnxpb

import (
	"bytes"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire encoding is checked against the protobuf module's own encoder,
// an implementation independent of ours.
func TestBuffer_Encoding(t *testing.T) {
	tests := []struct {
		name  string
		write func(w *buffer)
		want  func() []byte
	}{
		{
			name:  "small varint",
			write: func(w *buffer) { w.varint(1, 8) },
			want: func() []byte {
				b := protowire.AppendTag(nil, 1, protowire.VarintType)
				return protowire.AppendVarint(b, 8)
			},
		},
		{
			name:  "negative int64 uses ten bytes",
			write: func(w *buffer) { w.varint(3, -1) },
			want: func() []byte {
				b := protowire.AppendTag(nil, 3, protowire.VarintType)
				return protowire.AppendVarint(b, uint64(math.MaxUint64))
			},
		},
		{
			name:  "high field number",
			write: func(w *buffer) { w.varint(20, 7) },
			want: func() []byte {
				b := protowire.AppendTag(nil, 20, protowire.VarintType)
				return protowire.AppendVarint(b, 7)
			},
		},
		{
			name:  "float32",
			write: func(w *buffer) { w.float32(2, 0.25) },
			want: func() []byte {
				b := protowire.AppendTag(nil, 2, protowire.Fixed32Type)
				return protowire.AppendFixed32(b, math.Float32bits(0.25))
			},
		},
		{
			name:  "string",
			write: func(w *buffer) { w.string(4, "héllo") },
			want: func() []byte {
				b := protowire.AppendTag(nil, 4, protowire.BytesType)
				return protowire.AppendString(b, "héllo")
			},
		},
		{
			name:  "long bytes need a multi-byte length",
			write: func(w *buffer) { w.bytes(9, bytes.Repeat([]byte{7}, 300)) },
			want: func() []byte {
				b := protowire.AppendTag(nil, 9, protowire.BytesType)
				return protowire.AppendBytes(b, bytes.Repeat([]byte{7}, 300))
			},
		},
		{
			name:  "packed int64",
			write: func(w *buffer) { w.packedInt64(1, []int64{3, 300, -2}) },
			want: func() []byte {
				var p []byte
				for _, v := range []int64{3, 300, -2} {
					p = protowire.AppendVarint(p, uint64(v))
				}
				b := protowire.AppendTag(nil, 1, protowire.BytesType)
				return protowire.AppendBytes(b, p)
			},
		},
		{
			name:  "empty packed field is omitted",
			write: func(w *buffer) { w.packedInt64(1, nil) },
			want:  func() []byte { return nil },
		},
		{
			name:  "empty optional string is omitted",
			write: func(w *buffer) { w.optString(2, "") },
			want:  func() []byte { return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w buffer
			tt.write(&w)
			if want := tt.want(); !bytes.Equal(w.b, want) {
				t.Fatalf("got % x, want % x", w.b, want)
			}
		})
	}
}

// msg is a decoded protobuf message: each field number maps to its values
// in order, varints as uint64, fixed32 as uint32, length-delimited as []byte.
type msg map[protowire.Number][]any

func decode(t *testing.T, b []byte) msg {
	t.Helper()
	m := msg{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		var v any
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			v, n = protowire.ConsumeFixed32(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("field %d: unexpected wire type %d", num, typ)
		}
		if n < 0 {
			t.Fatalf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		m[num] = append(m[num], v)
	}
	return m
}

func (m msg) varint(t *testing.T, f protowire.Number) uint64 {
	t.Helper()
	vs := m[f]
	if len(vs) != 1 {
		t.Fatalf("field %d: want one value, got %d", f, len(vs))
	}
	return vs[0].(uint64)
}

func (m msg) str(t *testing.T, f protowire.Number) string {
	t.Helper()
	vs := m[f]
	if len(vs) != 1 {
		t.Fatalf("field %d: want one value, got %d", f, len(vs))
	}
	return string(vs[0].([]byte))
}

func (m msg) sub(t *testing.T, f protowire.Number, i int) msg {
	t.Helper()
	vs := m[f]
	if i >= len(vs) {
		t.Fatalf("field %d: want at least %d values, got %d", f, i+1, len(vs))
	}
	return decode(t, vs[i].([]byte))
}
