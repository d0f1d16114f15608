package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/feedback"
)

// fakeEngine records the requests it receives and answers with what the
// test configured; hook, when set, runs first and may block or panic.
type fakeEngine struct {
	mu        sync.Mutex
	searches  []engine.SearchRequest
	recs      []engine.RecommendRequest
	result    engine.Result
	err       error
	hook      func(ctx context.Context) error
	deadlines []time.Time
}

func (f *fakeEngine) Search(ctx context.Context, req engine.SearchRequest) (engine.Result, error) {
	f.mu.Lock()
	f.searches = append(f.searches, req)
	f.mu.Unlock()
	return f.answer(ctx)
}

func (f *fakeEngine) Recommend(ctx context.Context, req engine.RecommendRequest) (engine.Result, error) {
	f.mu.Lock()
	f.recs = append(f.recs, req)
	f.mu.Unlock()
	return f.answer(ctx)
}

func (f *fakeEngine) answer(ctx context.Context) (engine.Result, error) {
	if d, ok := ctx.Deadline(); ok {
		f.mu.Lock()
		f.deadlines = append(f.deadlines, d)
		f.mu.Unlock()
	}
	if f.hook != nil {
		if err := f.hook(ctx); err != nil {
			return engine.Result{}, err
		}
	}
	return f.result, f.err
}

func (f *fakeEngine) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.searches) + len(f.recs)
}

// fakePublisher records published events. gate, when set, is waited on
// before Publish returns, so a test can observe the handler mid-publish.
type fakePublisher struct {
	mu     sync.Mutex
	events []feedback.Event
	err    error
	gate   chan struct{}
}

func (p *fakePublisher) Publish(ctx context.Context, ev feedback.Event) error {
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.events = append(p.events, ev)
	return nil
}

func (p *fakePublisher) published() []feedback.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]feedback.Event(nil), p.events...)
}

// clientErr is an engine-side client error as the engine contract says it
// looks: ClientError always, NotFound optionally.
type clientErr struct {
	field, reason string
	notFound      bool
}

func (e *clientErr) Error() string                       { return e.field + ": " + e.reason }
func (e *clientErr) ClientError() (field, reason string) { return e.field, e.reason }
func (e *clientErr) NotFound() bool                      { return e.notFound }

// syncBuffer is a log sink safe for the goroutines fiber runs handlers on.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testEnv struct {
	srv  *Server
	eng  *fakeEngine
	pub  *fakePublisher
	reg  *prometheus.Registry
	logs *syncBuffer
	now  time.Time
	// base is set by listen; do then goes over a real TCP connection.
	base string
}

// listen serves env on 127.0.0.1 port 0 until the test ends. Needed where
// fiber's app.Test cannot show the answer: fasthttp rejects an oversized
// body while reading it, and app.Test reports that as a transport error.
func (env *testEnv) listen(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- env.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := env.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	env.base = "http://" + ln.Addr().String()
}

// newTestEnv builds a Server over fakes; tweak may adjust config and deps.
func newTestEnv(t *testing.T, tweak func(*Config, *Deps)) *testEnv {
	t.Helper()
	env := &testEnv{
		eng:  &fakeEngine{result: engine.Result{Bundle: "b1", Items: []engine.Hit{{ID: "i1", Title: "one", Score: 0.5}}}},
		pub:  &fakePublisher{},
		reg:  prometheus.NewRegistry(),
		logs: &syncBuffer{},
		now:  time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	cfg := DefaultConfig()
	deps := Deps{
		Engine:     env.eng,
		Feedback:   env.pub,
		Logger:     slog.New(slog.NewJSONHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: env.reg,
		Gatherer:   env.reg,
		Now:        func() time.Time { return env.now },
	}
	if tweak != nil {
		tweak(&cfg, &deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.srv = srv
	return env
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request through fiber's in-memory transport.
func (env *testEnv) do(t *testing.T, method, path, contentType, body string, header map[string]string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	var resp *http.Response
	var err error
	if env.base != "" {
		req.RequestURI = ""
		req.URL, err = url.Parse(env.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp, err = http.DefaultClient.Do(req)
	} else {
		resp, err = env.srv.App().Test(req, 5000)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (env *testEnv) postJSON(t *testing.T, path, body string) response {
	t.Helper()
	return env.do(t, http.MethodPost, path, "application/json", body, nil)
}

// errorOf decodes an error body strictly, failing the test when the body is
// not the documented shape.
func errorOf(t *testing.T, r response) errorDetail {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error content type %q, body %s", ct, r.body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	var b errorBody
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if b.Error.Code == "" || b.Error.Message == "" || b.Error.RequestID == "" {
		t.Fatalf("error body missing code, message or request_id: %s", r.body)
	}
	if got := r.header.Get(headerRequestID); got != b.Error.RequestID {
		t.Fatalf("request_id %q in body, %q in header", b.Error.RequestID, got)
	}
	return b.Error
}
