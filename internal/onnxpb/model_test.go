package onnxpb

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

func sampleModel(t *testing.T) *Model {
	t.Helper()
	g := NewGraph("sample")
	g.Input("x", Float, Dynamic("batch"), Fixed(3))
	g.Output("y", Float, Dynamic("batch"), Fixed(3))
	g.Initializer("w", []int64{3}, []float32{1, -2, 0.5})
	g.InitializerInt64("idx", []int64{2}, []int64{0, -1})
	g.Node("Mul", []string{"x", "w"}, []string{"y"})
	g.DomainNode(MLDomain, "Normalizer", []string{"y"}, []string{"unused"},
		AttrString("norm", "L2"), AttrInts("ints", []int64{1, 2}),
		AttrFloats("fs", []float32{1.5}), AttrStrings("ss", []string{"a", "b"}),
		AttrFloat("f", 2.5), AttrInt("i", -3))
	return &Model{
		ProducerName:    "recsys",
		ProducerVersion: "test",
		Opsets:          []Opset{{Version: DefaultOpset}, {Domain: MLDomain, Version: MLOpset}},
		Graph:           g,
		Metadata:        map[string]string{"z": "last", "a": "first"},
	}
}

func TestModel_Marshal(t *testing.T) {
	b, err := sampleModel(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, b)

	t.Run("header", func(t *testing.T) {
		if got := m.varint(t, modelIRVersion); got != DefaultIRVersion {
			t.Errorf("ir_version = %d", got)
		}
		if got := m.str(t, modelProducerName); got != "recsys" {
			t.Errorf("producer_name = %q", got)
		}
		if got := m.str(t, modelProducerVersion); got != "test" {
			t.Errorf("producer_version = %q", got)
		}
	})
	t.Run("opsets", func(t *testing.T) {
		def := m.sub(t, modelOpsetImport, 0)
		if _, ok := def[opsetDomain]; ok || def.varint(t, opsetVersion) != DefaultOpset {
			t.Errorf("default opset = %v", def)
		}
		ml := m.sub(t, modelOpsetImport, 1)
		if ml.str(t, opsetDomain) != MLDomain || ml.varint(t, opsetVersion) != MLOpset {
			t.Errorf("ml opset = %v", ml)
		}
	})
	t.Run("metadata sorted by key", func(t *testing.T) {
		first, second := m.sub(t, modelMetadataProps, 0), m.sub(t, modelMetadataProps, 1)
		if first.str(t, entryKey) != "a" || first.str(t, entryValue) != "first" ||
			second.str(t, entryKey) != "z" || second.str(t, entryValue) != "last" {
			t.Errorf("metadata = %v, %v", first, second)
		}
	})

	g := m.sub(t, modelGraph, 0)
	t.Run("graph inputs with dynamic and fixed dims", func(t *testing.T) {
		in := g.sub(t, graphInput, 0)
		if in.str(t, valueInfoName) != "x" {
			t.Fatalf("input name = %q", in.str(t, valueInfoName))
		}
		tt := in.sub(t, valueInfoType, 0).sub(t, typeTensor, 0)
		if tt.varint(t, typeTensorElem) != uint64(Float) {
			t.Errorf("elem type = %d", tt.varint(t, typeTensorElem))
		}
		shape := tt.sub(t, typeTensorShape, 0)
		if got := shape.sub(t, shapeDim, 0).str(t, dimParam); got != "batch" {
			t.Errorf("dim 0 param = %q", got)
		}
		if got := shape.sub(t, shapeDim, 1).varint(t, dimValue); got != 3 {
			t.Errorf("dim 1 value = %d", got)
		}
	})
	t.Run("float initializer raw data", func(t *testing.T) {
		w := g.sub(t, graphInitializer, 0)
		if w.str(t, tensorName) != "w" || w.varint(t, tensorDataType) != uint64(Float) {
			t.Fatalf("initializer = %v", w)
		}
		raw := []byte(w.str(t, tensorRawData))
		want := []float32{1, -2, 0.5}
		for i, v := range want {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != v {
				t.Errorf("value %d = %v, want %v", i, got, v)
			}
		}
	})
	t.Run("int64 initializer raw data", func(t *testing.T) {
		idx := g.sub(t, graphInitializer, 1)
		raw := []byte(idx.str(t, tensorRawData))
		if idx.varint(t, tensorDataType) != uint64(Int64) || int64(binary.LittleEndian.Uint64(raw[8:])) != -1 {
			t.Errorf("initializer = %v", idx)
		}
	})
	t.Run("node with domain and attributes", func(t *testing.T) {
		n := g.sub(t, graphNode, 1)
		if n.str(t, nodeOpType) != "Normalizer" || n.str(t, nodeDomain) != MLDomain {
			t.Fatalf("node = %v", n)
		}
		byName := map[string]msg{}
		for i := range n[nodeAttribute] {
			a := n.sub(t, nodeAttribute, i)
			byName[a.str(t, attrName)] = a
		}
		checks := []struct {
			name string
			kind uint64
			ok   func(a msg) bool
		}{
			{"norm", attrTypeString, func(a msg) bool { return a.str(t, attrS) == "L2" }},
			{"ints", attrTypeInts, func(a msg) bool { return len(a[attrInts]) == 2 && a[attrInts][1].(uint64) == 2 }},
			{"fs", attrTypeFloats, func(a msg) bool {
				return len(a[attrFloats]) == 1 && math.Float32frombits(a[attrFloats][0].(uint32)) == 1.5
			}},
			{"ss", attrTypeStrings, func(a msg) bool { return string(a[attrStrings][1].([]byte)) == "b" }},
			{"f", attrTypeFloat, func(a msg) bool { return math.Float32frombits(a[attrF][0].(uint32)) == 2.5 }},
			{"i", attrTypeInt, func(a msg) bool { return int64(a.varint(t, attrI)) == -3 }},
		}
		for _, c := range checks {
			a, ok := byName[c.name]
			if !ok {
				t.Errorf("attribute %s missing", c.name)
				continue
			}
			if a.varint(t, attrType) != c.kind || !c.ok(a) {
				t.Errorf("attribute %s = %v", c.name, a)
			}
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		again, err := sampleModel(t).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(b) {
			t.Error("two marshals of the same model differ")
		}
	})
}

func TestModel_MarshalErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(g *Graph)
		opset []Opset
		want  string
	}{
		{
			name:  "input used before produced",
			build: func(g *Graph) { g.Node("Relu", []string{"nope"}, []string{"y"}) },
			want:  `input "nope" is not produced`,
		},
		{
			name: "value produced twice",
			build: func(g *Graph) {
				g.Node("Relu", []string{"x"}, []string{"y"})
				g.Node("Relu", []string{"x"}, []string{"y"})
			},
			want: `value "y" produced twice`,
		},
		{
			name:  "output never produced",
			build: func(g *Graph) { g.Node("Relu", []string{"x"}, []string{"z"}) },
			want:  `graph output "y" is not produced`,
		},
		{
			name: "initializer shape mismatch",
			build: func(g *Graph) {
				g.Initializer("w", []int64{2, 2}, []float32{1, 2, 3})
				g.Node("Relu", []string{"x"}, []string{"y"})
			},
			want: "shape [2 2] holds 4 values, got 3",
		},
		{
			name: "domain without opset import",
			build: func(g *Graph) {
				g.DomainNode(MLDomain, "Normalizer", []string{"x"}, []string{"y"})
			},
			want: `uses domain "ai.onnx.ml" without an opset import`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGraph("bad")
			g.Input("x", Float, Fixed(1))
			g.Output("y", Float, Fixed(1))
			tt.build(g)
			_, err := (&Model{Graph: g, Opsets: tt.opset}).Marshal()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("no graph", func(t *testing.T) {
		if _, err := (&Model{}).Marshal(); err == nil {
			t.Fatal("want an error")
		}
	})
}
