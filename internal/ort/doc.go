// Package ort owns the process-wide ONNX Runtime setup and pools of
// inference sessions.
//
// ONNX Runtime has one environment per process, so Init is called once with
// the shared library's path and later calls must agree with it. A Pool holds
// a fixed number of sessions over one model; callers check a session out for
// one Run, which keeps the number of concurrent runs, and so the number of
// threads ONNX Runtime spins up, bounded by configuration rather than by
// request load.
package ort
