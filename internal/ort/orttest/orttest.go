// Package orttest initialises ONNX Runtime for tests, skipping them with a
// clear message when the shared library is not installed.
package orttest

import (
	"testing"

	"github.com/recsys-dev/recsys/internal/ort"
)

// Init initialises ONNX Runtime from ort.FindLibrary or skips the test.
// A library that is found but fails to load fails the test: that is a
// broken setup, not a missing one.
func Init(tb testing.TB) {
	tb.Helper()
	path, err := ort.FindLibrary()
	if err != nil {
		tb.Skipf("onnx runtime not available (run make setup or set %s): %v", ort.LibEnv, err)
	}
	if err := ort.Init(path); err != nil {
		tb.Fatalf("onnx runtime: %v", err)
	}
}
