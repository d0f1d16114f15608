package onnxpb

// Field numbers of AttributeProto and the values of its AttributeType enum.
const (
	attrName    = 1
	attrF       = 2
	attrI       = 3
	attrS       = 4
	attrT       = 5
	attrFloats  = 7
	attrInts    = 8
	attrStrings = 9
	attrType    = 20

	attrTypeFloat   = 1
	attrTypeInt     = 2
	attrTypeString  = 3
	attrTypeTensor  = 4
	attrTypeFloats  = 6
	attrTypeInts    = 7
	attrTypeStrings = 8
)

// Attr is a named operator attribute. Build one with AttrInt, AttrFloat and
// the other constructors; the zero value is not a valid attribute.
type Attr struct {
	Name    string
	kind    int
	i       int64
	f       float32
	s       string
	t       *Tensor
	ints    []int64
	floats  []float32
	strings []string
}

// AttrInt is an int64 attribute.
func AttrInt(name string, v int64) Attr { return Attr{Name: name, kind: attrTypeInt, i: v} }

// AttrFloat is a float32 attribute.
func AttrFloat(name string, v float32) Attr { return Attr{Name: name, kind: attrTypeFloat, f: v} }

// AttrString is a string attribute.
func AttrString(name, v string) Attr { return Attr{Name: name, kind: attrTypeString, s: v} }

// AttrTensor is a tensor attribute, as used by Constant.
func AttrTensor(name string, t *Tensor) Attr { return Attr{Name: name, kind: attrTypeTensor, t: t} }

// AttrInts is a list-of-int64 attribute.
func AttrInts(name string, v []int64) Attr {
	return Attr{Name: name, kind: attrTypeInts, ints: append([]int64(nil), v...)}
}

// AttrFloats is a list-of-float32 attribute.
func AttrFloats(name string, v []float32) Attr {
	return Attr{Name: name, kind: attrTypeFloats, floats: append([]float32(nil), v...)}
}

// AttrStrings is a list-of-strings attribute.
func AttrStrings(name string, v []string) Attr {
	return Attr{Name: name, kind: attrTypeStrings, strings: append([]string(nil), v...)}
}

func (a *Attr) encode() *buffer {
	var w buffer
	w.string(attrName, a.Name)
	switch a.kind {
	case attrTypeFloat:
		w.float32(attrF, a.f)
	case attrTypeInt:
		w.varint(attrI, a.i)
	case attrTypeString:
		w.string(attrS, a.s)
	case attrTypeTensor:
		if a.t != nil {
			w.message(attrT, a.t.encode())
		}
	case attrTypeFloats:
		// Written unpacked: a repeated field with zero elements must still
		// be distinguishable by its type tag, which is always present below.
		for _, f := range a.floats {
			w.float32(attrFloats, f)
		}
	case attrTypeInts:
		for _, i := range a.ints {
			w.varint(attrInts, i)
		}
	case attrTypeStrings:
		for _, s := range a.strings {
			w.string(attrStrings, s)
		}
	}
	w.varint(attrType, int64(a.kind))
	return &w
}
