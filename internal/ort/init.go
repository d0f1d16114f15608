package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// LibEnv is the environment variable that points tests (and tools) at the
// ONNX Runtime shared library.
const LibEnv = "RECSYS_ORT_LIB"

// libRelPath is where `make setup` puts the shared library.
const libRelPath = ".deps/libonnxruntime.so.1"

var (
	initMu   sync.Mutex
	initPath string
	initErr  error
	initDone bool
)

// ErrNotInitialized is returned by pools created before Init succeeded.
var ErrNotInitialized = errors.New("onnx runtime not initialised")

// Init loads the ONNX Runtime shared library at libPath and creates the
// process environment. It is safe to call from several goroutines and
// several times with the same path; the first outcome sticks, since the
// library cannot be unloaded and loaded again. A call with a different path
// is an error: two components disagreeing about the runtime is a
// configuration bug better reported than hidden.
func Init(libPath string) error {
	if libPath == "" {
		return errors.New("init onnx runtime: library path is empty")
	}
	abs, err := filepath.Abs(libPath)
	if err != nil {
		return fmt.Errorf("init onnx runtime: %w", err)
	}
	initMu.Lock()
	defer initMu.Unlock()
	if initDone {
		if abs != initPath {
			return fmt.Errorf("init onnx runtime: already initialised with %s, cannot switch to %s", initPath, abs)
		}
		return initErr
	}
	if _, err := os.Stat(abs); err != nil {
		// Nothing was loaded, so a later call may still pick a path.
		return fmt.Errorf("init onnx runtime: %w", err)
	}
	initDone = true
	initPath = abs
	onnx.SetSharedLibraryPath(abs)
	// Warnings are kept: they report real model problems (e.g. unused
	// initializers); verbose levels would flood the service log.
	if err := onnx.InitializeEnvironment(onnx.WithLogLevelWarning()); err != nil {
		initErr = fmt.Errorf("init onnx runtime %s: %w", abs, err)
		return initErr
	}
	return nil
}

// Initialized reports whether Init has succeeded.
func Initialized() bool {
	initMu.Lock()
	defer initMu.Unlock()
	return initDone && initErr == nil
}

// Version returns the ONNX Runtime version string, or "" before Init.
func Version() string {
	if !Initialized() {
		return ""
	}
	return onnx.GetVersion()
}

// FindLibrary locates the shared library for tests and local tools: the
// path in RECSYS_ORT_LIB when set, otherwise .deps/libonnxruntime.so.1 in
// the working directory or the nearest parent that has one. Services take
// the path from configuration instead.
func FindLibrary() (string, error) {
	if p := os.Getenv(LibEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("find onnx runtime: %s=%s: %w", LibEnv, p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find onnx runtime: %w", err)
	}
	for {
		p := filepath.Join(dir, libRelPath)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find onnx runtime: %s is unset and no %s found above the working directory", LibEnv, libRelPath)
		}
		dir = parent
	}
}
