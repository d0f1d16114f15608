package onnxpb

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DataType is an ONNX tensor element type (TensorProto.DataType).
type DataType int32

// Element types the project uses. The values are fixed by onnx.proto.
const (
	Float  DataType = 1
	Int32  DataType = 6
	Int64  DataType = 7
	String DataType = 8
	Double DataType = 11
)

// Field numbers of TensorProto.
const (
	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9
)

// Tensor is a dense constant: an initializer or a tensor attribute. Data is
// kept as little-endian raw bytes, the layout ONNX Runtime reads without a
// conversion.
type Tensor struct {
	Name string
	Type DataType
	Dims []int64
	Raw  []byte
}

// FloatTensor returns a float32 tensor of the given shape. It fails when the
// shape and the number of values disagree, because ONNX Runtime would only
// notice at session creation with a far less precise message.
func FloatTensor(name string, dims []int64, data []float32) (*Tensor, error) {
	if err := checkShape(dims, len(data)); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &Tensor{Name: name, Type: Float, Dims: cloneDims(dims), Raw: raw}, nil
}

// Int64Tensor returns an int64 tensor of the given shape.
func Int64Tensor(name string, dims []int64, data []int64) (*Tensor, error) {
	if err := checkShape(dims, len(data)); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &Tensor{Name: name, Type: Int64, Dims: cloneDims(dims), Raw: raw}, nil
}

func checkShape(dims []int64, n int) error {
	want := int64(1)
	for _, d := range dims {
		if d < 0 {
			return fmt.Errorf("negative dimension %d in %v", d, dims)
		}
		want *= d
	}
	if want != int64(n) {
		return fmt.Errorf("shape %v holds %d values, got %d", dims, want, n)
	}
	return nil
}

func cloneDims(dims []int64) []int64 {
	if dims == nil {
		// A nil shape is a scalar; keep it distinct from "unknown".
		return []int64{}
	}
	return append([]int64(nil), dims...)
}

func (t *Tensor) encode() *buffer {
	var w buffer
	w.packedInt64(tensorDims, t.Dims)
	w.varint(tensorDataType, int64(t.Type))
	w.optString(tensorName, t.Name)
	w.bytes(tensorRawData, t.Raw)
	return &w
}
