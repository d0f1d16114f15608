package ort

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/recsys-dev/recsys/internal/onnxpb"
)

// initRuntime mirrors orttest.Init, which this package's own tests cannot
// import without a cycle.
func initRuntime(t *testing.T) {
	t.Helper()
	path, err := FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup or set %s): %v", LibEnv, err)
	}
	if err := Init(path); err != nil {
		t.Fatal(err)
	}
}

// scaleModel computes y = x * k for a dynamic-length float vector.
func scaleModel(t *testing.T, k float32) []byte {
	t.Helper()
	g := onnxpb.NewGraph("scale")
	g.Input("x", onnxpb.Float, onnxpb.Dynamic("n"))
	g.Output("y", onnxpb.Float, onnxpb.Dynamic("n"))
	g.Initializer("k", []int64{1}, []float32{k})
	g.Node("Mul", []string{"x", "k"}, []string{"y"})
	b, err := (&onnxpb.Model{Graph: g, Metadata: map[string]string{"k": "scale"}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runScale(ctx context.Context, p *Pool, x []float32) ([]float32, error) {
	in, err := onnx.NewTensor(onnx.NewShape(int64(len(x))), x)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	out, err := onnx.NewEmptyTensor[float32](onnx.NewShape(int64(len(x))))
	if err != nil {
		return nil, err
	}
	defer out.Destroy()
	if err := p.Run(ctx, []onnx.Value{in}, []onnx.Value{out}); err != nil {
		return nil, err
	}
	return append([]float32(nil), out.GetData()...), nil
}

func TestInit(t *testing.T) {
	initRuntime(t)
	path, err := FindLibrary()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("same path again", func(t *testing.T) {
		if err := Init(path); err != nil {
			t.Fatalf("second Init with the same path: %v", err)
		}
	})
	t.Run("different path", func(t *testing.T) {
		err := Init(filepath.Join(t.TempDir(), "other.so"))
		if err == nil || !strings.Contains(err.Error(), "already initialised") {
			t.Fatalf("err = %v, want already initialised", err)
		}
	})
	t.Run("empty path", func(t *testing.T) {
		if err := Init(""); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("version", func(t *testing.T) {
		if Version() == "" {
			t.Fatal("empty version after Init")
		}
	})
}

func TestFindLibrary(t *testing.T) {
	t.Run("env points at a missing file", func(t *testing.T) {
		t.Setenv(LibEnv, filepath.Join(t.TempDir(), "missing.so"))
		if _, err := FindLibrary(); err == nil || !strings.Contains(err.Error(), LibEnv) {
			t.Fatalf("err = %v, want one naming %s", err, LibEnv)
		}
	})
	t.Run("env wins", func(t *testing.T) {
		want := filepath.Join(t.TempDir(), "lib.so")
		if err := writeFile(want); err != nil {
			t.Fatal(err)
		}
		t.Setenv(LibEnv, want)
		got, err := FindLibrary()
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
	t.Run("walks up from the working directory", func(t *testing.T) {
		root := t.TempDir()
		want := filepath.Join(root, libRelPath)
		if err := writeFile(want); err != nil {
			t.Fatal(err)
		}
		deep := filepath.Join(root, "a", "b")
		if err := mkdirAll(deep); err != nil {
			t.Fatal(err)
		}
		t.Setenv(LibEnv, "")
		t.Chdir(deep)
		got, err := FindLibrary()
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
}

func TestPoolConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		cfg  PoolConfig
		want string
	}{
		{"ok", PoolConfig{Sessions: 2}, ""},
		{"no sessions", PoolConfig{}, "sessions: must be > 0"},
		{"negative threads", PoolConfig{Sessions: 1, IntraOpThreads: -1}, "intra_op_threads: must be >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || err.Error() != tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewPool(t *testing.T) {
	initRuntime(t)
	tests := []struct {
		name  string
		model []byte
		cfg   PoolConfig
		want  string
	}{
		{"garbage bytes", []byte("not a model"), PoolConfig{Sessions: 1}, "read model"},
		{"empty model", nil, PoolConfig{Sessions: 1}, "empty model"},
		{"unknown input", scaleModel(t, 2), PoolConfig{Sessions: 1, Inputs: []string{"nope"}}, `no input "nope"`},
		{"unknown output", scaleModel(t, 2), PoolConfig{Sessions: 1, Outputs: []string{"nope"}}, `no output "nope"`},
		{"bad config", scaleModel(t, 2), PoolConfig{}, "sessions: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPool(tt.model, tt.cfg)
			if err == nil {
				p.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPool_Run(t *testing.T) {
	initRuntime(t)
	p, err := NewPool(scaleModel(t, 3), PoolConfig{Sessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	t.Run("metadata and names", func(t *testing.T) {
		if p.Metadata().Custom["k"] != "scale" {
			t.Errorf("metadata = %+v", p.Metadata())
		}
		if in, out := p.Inputs(), p.Outputs(); len(in) != 1 || in[0] != "x" || len(out) != 1 || out[0] != "y" {
			t.Errorf("inputs %v outputs %v", in, out)
		}
	})
	t.Run("concurrent callers", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				x := []float32{float32(i), 1, -2}
				y, err := runScale(context.Background(), p, x)
				if err != nil {
					errs <- err
					return
				}
				for j := range x {
					if y[j] != 3*x[j] {
						errs <- errors.New("wrong result")
						return
					}
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := runScale(ctx, p, []float32{1}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("waits for a session within the deadline", func(t *testing.T) {
		a, err := p.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err = runScale(ctx, p, []float32{1})
		p.release(a)
		p.release(b)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded while all sessions are busy", err)
		}
		// The pool is whole again.
		if _, err := runScale(context.Background(), p, []float32{1}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReadMetadata(t *testing.T) {
	initRuntime(t)
	md, err := ReadMetadata(scaleModel(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if md.Custom["k"] != "scale" || md.GraphName != "scale" {
		t.Fatalf("metadata = %+v", md)
	}
	if _, err := ReadMetadata([]byte("junk")); err == nil {
		t.Fatal("want an error for junk bytes")
	}
}

func TestPool_Close(t *testing.T) {
	initRuntime(t)
	p, err := NewPool(scaleModel(t, 1), PoolConfig{Sessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	held, err := p.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()

	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a session was in use", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := runScale(context.Background(), p, []float32{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("run during Close: err = %v, want ErrClosed", err)
	}
	p.release(held)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the session was released")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := runScale(context.Background(), p, []float32{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("run after Close: err = %v, want ErrClosed", err)
	}
}
