// Package onnxpb writes ONNX model files.
//
// It owns the small subset of the ONNX protobuf schema (onnx.proto, IR
// version 8 and later) the project needs to emit its own models: models with
// opset imports and metadata, graphs, nodes, attributes, tensors and typed
// inputs and outputs. The protobuf wire format is written by hand because the
// schema is stable, the subset is small and a generated package would pull in
// a large runtime for what is a few hundred lines of encoding.
//
// The package only writes; models are read back by ONNX Runtime.
package onnxpb
