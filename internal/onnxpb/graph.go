package onnxpb

import (
	"fmt"
	"sort"
)

// Field numbers of GraphProto, NodeProto, ValueInfoProto, TypeProto,
// TypeProto.Tensor, TensorShapeProto and its Dimension.
const (
	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphDocString   = 10
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
	nodeDocString = 6
	nodeDomain    = 7

	valueInfoName = 1
	valueInfoType = 2

	typeTensor      = 1
	typeTensorElem  = 1
	typeTensorShape = 2
	shapeDim        = 1
	dimValue        = 1
	dimParam        = 2
)

// Dim is one dimension of a graph input or output: a fixed size, or a named
// symbolic size (such as "batch") that is only known at run time.
type Dim struct {
	Value int64
	Param string
}

// Fixed returns a dimension of known size.
func Fixed(n int64) Dim { return Dim{Value: n} }

// Dynamic returns a named dimension whose size is decided per run.
func Dynamic(name string) Dim { return Dim{Param: name} }

// ValueInfo describes a graph input or output.
type ValueInfo struct {
	Name  string
	Type  DataType
	Shape []Dim
}

// Node is one operator application in a graph.
type Node struct {
	Name    string
	OpType  string
	Domain  string // "" is the default ai.onnx domain
	Inputs  []string
	Outputs []string
	Attrs   []Attr
	Doc     string
}

// Graph is a computation graph under construction. Nodes must be added in
// topological order, which is what ONNX requires of the serialised form.
type Graph struct {
	Name         string
	Doc          string
	Nodes        []*Node
	Initializers []*Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	err          error
}

// NewGraph returns an empty graph.
func NewGraph(name string) *Graph {
	return &Graph{Name: name}
}

// Input declares a graph input.
func (g *Graph) Input(name string, t DataType, shape ...Dim) {
	g.Inputs = append(g.Inputs, ValueInfo{Name: name, Type: t, Shape: shape})
}

// Output declares a graph output.
func (g *Graph) Output(name string, t DataType, shape ...Dim) {
	g.Outputs = append(g.Outputs, ValueInfo{Name: name, Type: t, Shape: shape})
}

// Node appends an operator of the default domain and returns it so the
// caller can adjust it (for instance set Domain). Nodes get a unique name
// derived from the operator when none is set, which keeps ONNX Runtime's
// error messages pointing at a recognisable node.
func (g *Graph) Node(op string, inputs, outputs []string, attrs ...Attr) *Node {
	n := &Node{
		Name:    fmt.Sprintf("%s_%d", op, len(g.Nodes)),
		OpType:  op,
		Inputs:  append([]string(nil), inputs...),
		Outputs: append([]string(nil), outputs...),
		Attrs:   attrs,
	}
	g.Nodes = append(g.Nodes, n)
	return n
}

// DomainNode appends an operator of another domain, such as ai.onnx.ml.
func (g *Graph) DomainNode(domain, op string, inputs, outputs []string, attrs ...Attr) *Node {
	n := g.Node(op, inputs, outputs, attrs...)
	n.Domain = domain
	return n
}

// Initializer adds a float32 constant. A shape error is remembered and
// reported by Model.Marshal, so a builder reads as a straight list of calls.
func (g *Graph) Initializer(name string, dims []int64, data []float32) {
	t, err := FloatTensor(name, dims, data)
	g.addInitializer(t, err)
}

// InitializerInt64 adds an int64 constant.
func (g *Graph) InitializerInt64(name string, dims []int64, data []int64) {
	t, err := Int64Tensor(name, dims, data)
	g.addInitializer(t, err)
}

// AddTensor adds a prepared tensor as an initializer.
func (g *Graph) AddTensor(t *Tensor) {
	g.addInitializer(t, nil)
}

func (g *Graph) addInitializer(t *Tensor, err error) {
	if err != nil {
		if g.err == nil {
			g.err = err
		}
		return
	}
	g.Initializers = append(g.Initializers, t)
}

// check catches mistakes that would otherwise surface as opaque ONNX Runtime
// errors at session creation: duplicate value producers and names that are
// used but never produced.
func (g *Graph) check() error {
	if g.err != nil {
		return g.err
	}
	produced := make(map[string]bool)
	add := func(name, what string) error {
		if name == "" {
			return fmt.Errorf("%s with an empty name", what)
		}
		if produced[name] {
			return fmt.Errorf("value %q produced twice (%s)", name, what)
		}
		produced[name] = true
		return nil
	}
	for _, in := range g.Inputs {
		if err := add(in.Name, "input"); err != nil {
			return err
		}
	}
	for _, t := range g.Initializers {
		if err := add(t.Name, "initializer"); err != nil {
			return err
		}
	}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			// An empty input name marks an omitted optional input.
			if in != "" && !produced[in] {
				return fmt.Errorf("node %s (%s): input %q is not produced before it", n.Name, n.OpType, in)
			}
		}
		for _, out := range n.Outputs {
			if err := add(out, "output of node "+n.Name); err != nil {
				return err
			}
		}
	}
	for _, out := range g.Outputs {
		if !produced[out.Name] {
			return fmt.Errorf("graph output %q is not produced", out.Name)
		}
	}
	return nil
}

func (g *Graph) encode() *buffer {
	var w buffer
	for _, n := range g.Nodes {
		w.message(graphNode, n.encode())
	}
	w.optString(graphName, g.Name)
	for _, t := range g.Initializers {
		w.message(graphInitializer, t.encode())
	}
	w.optString(graphDocString, g.Doc)
	for _, in := range g.Inputs {
		w.message(graphInput, in.encode())
	}
	for _, out := range g.Outputs {
		w.message(graphOutput, out.encode())
	}
	return &w
}

func (n *Node) encode() *buffer {
	var w buffer
	for _, in := range n.Inputs {
		w.string(nodeInput, in)
	}
	for _, out := range n.Outputs {
		w.string(nodeOutput, out)
	}
	w.optString(nodeName, n.Name)
	w.string(nodeOpType, n.OpType)
	for i := range n.Attrs {
		w.message(nodeAttribute, n.Attrs[i].encode())
	}
	w.optString(nodeDocString, n.Doc)
	w.optString(nodeDomain, n.Domain)
	return &w
}

func (v ValueInfo) encode() *buffer {
	var shape buffer
	for _, d := range v.Shape {
		var dim buffer
		if d.Param != "" {
			dim.string(dimParam, d.Param)
		} else {
			dim.varint(dimValue, d.Value)
		}
		shape.message(shapeDim, &dim)
	}
	var tensor buffer
	tensor.varint(typeTensorElem, int64(v.Type))
	// An empty shape message means "rank 0" (a scalar), while an absent one
	// means "unknown rank"; declared values always have a known rank.
	tensor.message(typeTensorShape, &shape)
	var typ buffer
	typ.message(typeTensor, &tensor)

	var w buffer
	w.string(valueInfoName, v.Name)
	w.message(valueInfoType, &typ)
	return &w
}

// sortedKeys gives metadata a stable order so the same model always
// serialises to the same bytes (and the same checksum in a bundle manifest).
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
