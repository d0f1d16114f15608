package ort

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// ErrClosed is returned when a pool is used after Close.
var ErrClosed = errors.New("session pool closed")

// PoolConfig sizes a session pool.
type PoolConfig struct {
	// Sessions is how many runs may execute at once. Each session holds its
	// own copy of the model's initialized state, so memory grows with it.
	Sessions int
	// IntraOpThreads is the thread count one run may use. It defaults to 1
	// because the server has many concurrent callers: parallelism comes from
	// Sessions, and per-run threads would only contend for the same cores.
	// Offline batch jobs with few callers may raise it.
	IntraOpThreads int
	// Inputs and Outputs name the values passed to and returned by Run, in
	// order. When empty, all of the model's inputs or outputs are used in
	// the model's own order.
	Inputs  []string
	Outputs []string
}

// Validate reports the first invalid field.
func (c PoolConfig) Validate() error {
	if c.Sessions <= 0 {
		return errors.New("sessions: must be > 0")
	}
	if c.IntraOpThreads < 0 {
		return errors.New("intra_op_threads: must be >= 0")
	}
	return nil
}

// Metadata is what a model says about itself.
type Metadata struct {
	Producer    string
	GraphName   string
	Domain      string
	Description string
	Version     int64
	// Custom holds the model's metadata_props.
	Custom map[string]string
}

// Pool is a fixed set of sessions over one model. It is safe for concurrent
// use.
type Pool struct {
	free     chan *session
	done     chan struct{}
	size     int
	inputs   []string
	outputs  []string
	meta     Metadata
	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

type session struct {
	s    *onnx.DynamicAdvancedSession
	opts *onnx.RunOptions
}

// OpenPool reads the model file at path and creates a pool over it.
func OpenPool(path string, cfg PoolConfig) (*Pool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open session pool: %w", err)
	}
	p, err := NewPool(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("open session pool %s: %w", path, err)
	}
	return p, nil
}

// NewPool creates a pool over a model held in memory.
func NewPool(model []byte, cfg PoolConfig) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("session pool config: %w", err)
	}
	if !Initialized() {
		return nil, ErrNotInitialized
	}
	if len(model) == 0 {
		return nil, errors.New("new session pool: empty model")
	}
	ins, outs, err := onnx.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, fmt.Errorf("new session pool: read model: %w", err)
	}
	inputs, err := pickNames("input", cfg.Inputs, ins)
	if err != nil {
		return nil, fmt.Errorf("new session pool: %w", err)
	}
	outputs, err := pickNames("output", cfg.Outputs, outs)
	if err != nil {
		return nil, fmt.Errorf("new session pool: %w", err)
	}
	meta, err := readMetadata(model)
	if err != nil {
		return nil, fmt.Errorf("new session pool: %w", err)
	}

	opts, err := newSessionOptions(cfg.IntraOpThreads)
	if err != nil {
		return nil, fmt.Errorf("new session pool: %w", err)
	}
	defer opts.Destroy()

	p := &Pool{
		free:    make(chan *session, cfg.Sessions),
		done:    make(chan struct{}),
		size:    cfg.Sessions,
		inputs:  inputs,
		outputs: outputs,
		meta:    meta,
	}
	for i := 0; i < cfg.Sessions; i++ {
		s, err := onnx.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, opts)
		if err != nil {
			p.destroyFree()
			return nil, fmt.Errorf("new session pool: create session: %w", err)
		}
		ro, err := onnx.NewRunOptions()
		if err != nil {
			s.Destroy()
			p.destroyFree()
			return nil, fmt.Errorf("new session pool: run options: %w", err)
		}
		p.free <- &session{s: s, opts: ro}
	}
	return p, nil
}

func newSessionOptions(intra int) (*onnx.SessionOptions, error) {
	if intra == 0 {
		intra = 1
	}
	opts, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	// Inter-op parallelism only helps graphs with independent branches;
	// ours are chains, and extra pools of threads per session would
	// multiply across sessions.
	steps := []func() error{
		func() error { return opts.SetIntraOpNumThreads(intra) },
		func() error { return opts.SetInterOpNumThreads(1) },
		func() error { return opts.SetExecutionMode(onnx.ExecutionModeSequential) },
		// Spinning workers burn CPU between requests that another
		// session could use; ONNX Runtime spins by default.
		func() error { return opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			opts.Destroy()
			return nil, fmt.Errorf("session options: %w", err)
		}
	}
	return opts, nil
}

func pickNames(kind string, want []string, have []onnx.InputOutputInfo) ([]string, error) {
	if len(want) == 0 {
		names := make([]string, len(have))
		for i, h := range have {
			names[i] = h.Name
		}
		return names, nil
	}
	known := make(map[string]bool, len(have))
	for _, h := range have {
		known[h.Name] = true
	}
	for _, w := range want {
		if !known[w] {
			return nil, fmt.Errorf("model has no %s %q", kind, w)
		}
	}
	return append([]string(nil), want...), nil
}

// ReadMetadata returns a model's self-description without creating a
// session, e.g. to check a bundle's models before loading them.
func ReadMetadata(model []byte) (Metadata, error) {
	if !Initialized() {
		return Metadata{}, ErrNotInitialized
	}
	return readMetadata(model)
}

func readMetadata(model []byte) (Metadata, error) {
	md, err := onnx.GetModelMetadataWithONNXData(model)
	if err != nil {
		return Metadata{}, fmt.Errorf("read metadata: %w", err)
	}
	defer md.Destroy()
	var m Metadata
	// The descriptive fields are optional in ONNX; a failure to read one is
	// not worth refusing a model for, the custom map is what matters.
	m.Producer, _ = md.GetProducerName()
	m.GraphName, _ = md.GetGraphName()
	m.Domain, _ = md.GetDomain()
	m.Description, _ = md.GetDescription()
	m.Version, _ = md.GetVersion()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return Metadata{}, fmt.Errorf("read metadata keys: %w", err)
	}
	m.Custom = make(map[string]string, len(keys))
	for _, k := range keys {
		v, ok, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return Metadata{}, fmt.Errorf("read metadata %q: %w", k, err)
		}
		if ok {
			m.Custom[k] = v
		}
	}
	return m, nil
}

// Metadata returns the model's self-description. The Custom map is a copy.
func (p *Pool) Metadata() Metadata {
	m := p.meta
	m.Custom = make(map[string]string, len(p.meta.Custom))
	for k, v := range p.meta.Custom {
		m.Custom[k] = v
	}
	return m
}

// Inputs returns the input names Run expects, in order.
func (p *Pool) Inputs() []string { return append([]string(nil), p.inputs...) }

// Outputs returns the output names Run returns, in order.
func (p *Pool) Outputs() []string { return append([]string(nil), p.outputs...) }

// Size returns the number of sessions.
func (p *Pool) Size() int { return p.size }

// Run checks out a session, runs the model and returns the session. Inputs
// are in Inputs order; outputs are in Outputs order, and a nil entry lets
// ONNX Runtime allocate that output (the caller then destroys it).
//
// Waiting for a session honours ctx. A run that has started is asked to
// terminate when ctx ends, which ONNX Runtime checks between operators.
func (p *Pool) Run(ctx context.Context, inputs, outputs []onnx.Value) error {
	s, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer p.release(s)

	var terminated chan struct{}
	if ctx.Done() != nil {
		terminated = make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(terminated)
			_ = s.opts.Terminate()
		})
		defer func() {
			if !stop() {
				// The terminate flag is sticky on the run options; wait for
				// it to be set, then clear it so the session's next user
				// starts clean.
				<-terminated
				_ = s.opts.UnsetTerminate()
			}
		}()
	}
	if err := s.s.RunWithOptions(inputs, outputs, s.opts); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("run model: %w", ctxErr)
		}
		return fmt.Errorf("run model: %w", err)
	}
	return nil
}

func (p *Pool) acquire(ctx context.Context) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("acquire session: %w", err)
	}
	select {
	case s := <-p.free:
		select {
		case <-p.done:
			// Close started while we waited; give the session back for
			// Close to destroy.
			p.free <- s
			return nil, ErrClosed
		default:
			return s, nil
		}
	case <-p.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("acquire session: %w", ctx.Err())
	}
}

func (p *Pool) release(s *session) { p.free <- s }

// Close waits for sessions in use to be returned, then frees them all. New
// runs fail with ErrClosed as soon as Close starts. Calling Close again
// returns the first result.
func (p *Pool) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return p.closeErr
	}
	p.closed = true
	close(p.done)
	var errs []error
	for i := 0; i < p.size; i++ {
		s := <-p.free
		errs = append(errs, s.destroy())
	}
	p.closeErr = errors.Join(errs...)
	return p.closeErr
}

// destroyFree frees the sessions built so far when construction fails.
func (p *Pool) destroyFree() {
	for {
		select {
		case s := <-p.free:
			_ = s.destroy()
		default:
			return
		}
	}
}

func (s *session) destroy() error {
	return errors.Join(s.s.Destroy(), s.opts.Destroy())
}
