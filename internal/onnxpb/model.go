package onnxpb

import (
	"errors"
	"fmt"
)

// Field numbers of ModelProto, OperatorSetIdProto and
// StringStringEntryProto.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelDomain          = 4
	modelModelVersion    = 5
	modelDocString       = 6
	modelGraph           = 7
	modelOpsetImport     = 8
	modelMetadataProps   = 14

	opsetDomain  = 1
	opsetVersion = 2

	entryKey   = 1
	entryValue = 2
)

// Defaults chosen for broad runtime support: IR version 8 is the one that
// introduced opset 17, and ONNX Runtime 1.14 and later load both.
const (
	DefaultIRVersion = 8
	DefaultOpset     = 17
	// MLOpset is the ai.onnx.ml version that pairs with opset 17.
	MLOpset = 3
	// MLDomain is the domain of the classical ML operators (tree ensembles).
	MLDomain = "ai.onnx.ml"
)

// Opset names one imported operator set. An empty Domain is ai.onnx.
type Opset struct {
	Domain  string
	Version int64
}

// Model is a complete ONNX model.
type Model struct {
	IRVersion       int64   // DefaultIRVersion when zero
	Opsets          []Opset // ai.onnx at DefaultOpset when empty
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	Doc             string
	Graph           *Graph
	// Metadata lands in metadata_props, which ONNX Runtime exposes as the
	// model's custom metadata map: the place a model describes itself.
	Metadata map[string]string
}

// Marshal checks the model and encodes it in the protobuf wire format.
func (m *Model) Marshal() ([]byte, error) {
	if m.Graph == nil {
		return nil, errors.New("marshal onnx model: no graph")
	}
	if err := m.Graph.check(); err != nil {
		return nil, fmt.Errorf("marshal onnx model: graph %s: %w", m.Graph.Name, err)
	}
	ir := m.IRVersion
	if ir == 0 {
		ir = DefaultIRVersion
	}
	opsets := m.Opsets
	if len(opsets) == 0 {
		opsets = []Opset{{Version: DefaultOpset}}
	}
	if err := checkDomains(m.Graph, opsets); err != nil {
		return nil, fmt.Errorf("marshal onnx model: %w", err)
	}

	var w buffer
	w.varint(modelIRVersion, ir)
	w.optString(modelProducerName, m.ProducerName)
	w.optString(modelProducerVersion, m.ProducerVersion)
	w.optString(modelDomain, m.Domain)
	if m.ModelVersion != 0 {
		w.varint(modelModelVersion, m.ModelVersion)
	}
	w.optString(modelDocString, m.Doc)
	w.message(modelGraph, m.Graph.encode())
	for _, o := range opsets {
		var ow buffer
		ow.optString(opsetDomain, o.Domain)
		ow.varint(opsetVersion, o.Version)
		w.message(modelOpsetImport, &ow)
	}
	for _, k := range sortedKeys(m.Metadata) {
		var ew buffer
		ew.string(entryKey, k)
		ew.string(entryValue, m.Metadata[k])
		w.message(modelMetadataProps, &ew)
	}
	return w.b, nil
}

// checkDomains refuses a node whose domain has no opset import, a mistake
// ONNX Runtime reports only as a missing operator.
func checkDomains(g *Graph, opsets []Opset) error {
	have := make(map[string]bool, len(opsets))
	for _, o := range opsets {
		have[o.Domain] = true
	}
	for _, n := range g.Nodes {
		if !have[n.Domain] {
			return fmt.Errorf("node %s uses domain %q without an opset import", n.Name, n.Domain)
		}
	}
	return nil
}
