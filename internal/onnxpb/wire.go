package onnxpb

import (
	"encoding/binary"
	"math"
)

// Protobuf wire types used by the ONNX schema.
const (
	wireVarint  = 0
	wireFixed32 = 5
	wireBytes   = 2
)

// buffer accumulates one protobuf message. Nested messages are encoded into
// their own buffer first because a length prefix must precede the payload;
// models are small apart from tensor payloads, which are copied only once
// into the parent.
type buffer struct {
	b []byte
}

func (w *buffer) tag(field int, wireType int) {
	w.b = binary.AppendUvarint(w.b, uint64(field)<<3|uint64(wireType))
}

// varint writes an int64 field. Zero values are written too: proto2 fields
// (ONNX uses proto2 semantics) distinguish "absent" from "zero", and callers
// decide what to skip.
func (w *buffer) varint(field int, v int64) {
	w.tag(field, wireVarint)
	// Negative int64 values are encoded as their two's complement in ten
	// bytes, as protobuf's int64 type requires (not zig-zag).
	w.b = binary.AppendUvarint(w.b, uint64(v))
}

func (w *buffer) float32(field int, v float32) {
	w.tag(field, wireFixed32)
	w.b = binary.LittleEndian.AppendUint32(w.b, math.Float32bits(v))
}

func (w *buffer) bytes(field int, p []byte) {
	w.tag(field, wireBytes)
	w.b = binary.AppendUvarint(w.b, uint64(len(p)))
	w.b = append(w.b, p...)
}

func (w *buffer) string(field int, s string) {
	w.tag(field, wireBytes)
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

// optString skips empty strings, which for every ONNX string field means
// "not set".
func (w *buffer) optString(field int, s string) {
	if s != "" {
		w.string(field, s)
	}
}

func (w *buffer) message(field int, m *buffer) {
	w.bytes(field, m.b)
}

// packedInt64 writes a repeated int64 field in packed form, which proto2
// parsers accept for repeated scalars.
func (w *buffer) packedInt64(field int, vs []int64) {
	if len(vs) == 0 {
		return
	}
	var p []byte
	for _, v := range vs {
		p = binary.AppendUvarint(p, uint64(v))
	}
	w.bytes(field, p)
}

func (w *buffer) packedFloat32(field int, vs []float32) {
	if len(vs) == 0 {
		return
	}
	p := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		p = binary.LittleEndian.AppendUint32(p, math.Float32bits(v))
	}
	w.bytes(field, p)
}
