package onnxpb_test

import (
	"context"
	"math"
	"testing"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/recsys-dev/recsys/internal/onnxpb"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/internal/ort/orttest"
)

// TestModel_RunsInONNXRuntime is the real check of the writer: ONNX Runtime
// loads a model using every attribute kind the project relies on, a second
// operator domain and dynamic dimensions, and computes what Go computes.
func TestModel_RunsInONNXRuntime(t *testing.T) {
	orttest.Init(t)

	table := []float32{
		0, 1, 2,
		-3, 4, -5,
		6, -7, 8,
	}
	g := onnxpb.NewGraph("runtime_check")
	g.Input("x", onnxpb.Float, onnxpb.Dynamic("batch"), onnxpb.Fixed(3))
	g.Input("ids", onnxpb.Int64, onnxpb.Dynamic("batch"))
	g.Output("t", onnxpb.Float, onnxpb.Fixed(3), onnxpb.Dynamic("batch"))
	g.Output("lin", onnxpb.Float, onnxpb.Dynamic("batch"), onnxpb.Fixed(1))
	g.Initializer("table", []int64{3, 3}, table)
	half, err := onnxpb.FloatTensor("half", []int64{3}, []float32{0.5, 0.5, 0.5})
	if err != nil {
		t.Fatal(err)
	}
	g.Node("Constant", nil, []string{"c"}, onnxpb.AttrTensor("value", half))
	g.Node("Gather", []string{"table", "ids"}, []string{"rows"}, onnxpb.AttrInt("axis", 0))
	g.Node("Add", []string{"x", "rows"}, []string{"s"})
	g.Node("Mul", []string{"s", "c"}, []string{"s2"})
	g.Node("LeakyRelu", []string{"s2"}, []string{"act"}, onnxpb.AttrFloat("alpha", 0.1))
	g.Node("Transpose", []string{"act"}, []string{"t"}, onnxpb.AttrInts("perm", []int64{1, 0}))
	g.DomainNode(onnxpb.MLDomain, "LinearRegressor", []string{"act"}, []string{"lin"},
		onnxpb.AttrFloats("coefficients", []float32{1, 2, 3}),
		onnxpb.AttrFloats("intercepts", []float32{0.5}),
		onnxpb.AttrString("post_transform", "NONE"),
		onnxpb.AttrInt("targets", 1))
	model := &onnxpb.Model{
		ProducerName: "recsys-test",
		Opsets: []onnxpb.Opset{
			{Version: onnxpb.DefaultOpset},
			{Domain: onnxpb.MLDomain, Version: onnxpb.MLOpset},
		},
		Graph:    g,
		Metadata: map[string]string{"kind": "runtime-check"},
	}
	data, err := model.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := ort.NewPool(data, ort.PoolConfig{Sessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	if md := pool.Metadata(); md.Custom["kind"] != "runtime-check" || md.Producer != "recsys-test" {
		t.Errorf("metadata = %+v", md)
	}

	x := []float32{1, 2, 3, -10, 0, 10}
	ids := []int64{2, 1}
	xt, err := onnx.NewTensor(onnx.NewShape(2, 3), x)
	if err != nil {
		t.Fatal(err)
	}
	defer xt.Destroy()
	it, err := onnx.NewTensor(onnx.NewShape(2), ids)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Destroy()
	outs := make([]onnx.Value, 2)
	if err := pool.Run(context.Background(), []onnx.Value{xt, it}, outs); err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		defer o.Destroy()
	}

	act := make([]float32, 6)
	for b := 0; b < 2; b++ {
		for j := 0; j < 3; j++ {
			v := (x[b*3+j] + table[ids[b]*3+int64(j)]) * 0.5
			if v < 0 {
				v *= 0.1
			}
			act[b*3+j] = v
		}
	}
	gotT := outs[0].(*onnx.Tensor[float32])
	if !gotT.GetShape().Equals(onnx.NewShape(3, 2)) {
		t.Fatalf("t shape = %v", gotT.GetShape())
	}
	for j := 0; j < 3; j++ {
		for b := 0; b < 2; b++ {
			if got, want := gotT.GetData()[j*2+b], act[b*3+j]; math.Abs(float64(got-want)) > 1e-6 {
				t.Errorf("t[%d][%d] = %v, want %v", j, b, got, want)
			}
		}
	}
	gotLin := outs[1].(*onnx.Tensor[float32]).GetData()
	for b := 0; b < 2; b++ {
		want := 0.5 + act[b*3] + 2*act[b*3+1] + 3*act[b*3+2]
		if math.Abs(float64(gotLin[b]-want)) > 1e-5 {
			t.Errorf("lin[%d] = %v, want %v", b, gotLin[b], want)
		}
	}
}
