package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/engine"
)

func TestServer_MalformedRequests(t *testing.T) {
	const ctJSON = "application/json"
	future := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC).Format(time.RFC3339)
	recent := `"` + strings.Repeat(`a","`, 100) + `a"`
	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		status      int
		code        string
		field       string
	}{
		{"truncated json", "POST", "/v1/search", ctJSON, `{"query":`, 400, CodeInvalidArgument, "body"},
		{"syntax error", "POST", "/v1/search", ctJSON, `{"query" "shoes"}`, 400, CodeInvalidArgument, "body"},
		{"empty body", "POST", "/v1/search", ctJSON, ``, 400, CodeInvalidArgument, "body"},
		{"array body", "POST", "/v1/search", ctJSON, `[{"query":"x"}]`, 400, CodeInvalidArgument, "body"},
		{"two values", "POST", "/v1/search", ctJSON, `{"query":"a"} {"query":"b"}`, 400, CodeInvalidArgument, "body"},
		{"trailing garbage", "POST", "/v1/search", ctJSON, `{"query":"a"}x`, 400, CodeInvalidArgument, "body"},
		{"query wrong type", "POST", "/v1/search", ctJSON, `{"query":5}`, 400, CodeInvalidArgument, "query"},
		{"k wrong type", "POST", "/v1/search", ctJSON, `{"query":"a","k":"10"}`, 400, CodeInvalidArgument, "k"},
		{"k fractional", "POST", "/v1/search", ctJSON, `{"query":"a","k":1.5}`, 400, CodeInvalidArgument, "k"},
		{"k zero", "POST", "/v1/search", ctJSON, `{"query":"a","k":0}`, 400, CodeInvalidArgument, "k"},
		{"unknown retrieval", "POST", "/v1/search", ctJSON, `{"query":"a","retrieval":"sparse"}`, 400, CodeInvalidArgument, "retrieval"},
		{"k negative", "POST", "/v1/search", ctJSON, `{"query":"a","k":-3}`, 400, CodeInvalidArgument, "k"},
		{"k too large", "POST", "/v1/search", ctJSON, `{"query":"a","k":1001}`, 400, CodeInvalidArgument, "k"},
		{"unknown field", "POST", "/v1/search", ctJSON, `{"query":"a","colour":"red"}`, 400, CodeInvalidArgument, "colour"},
		{"unknown nested field", "POST", "/v1/search", ctJSON, `{"query":"a","filters":{"colour":"red"}}`, 400, CodeInvalidArgument, "filters.colour"},
		{"missing query", "POST", "/v1/search", ctJSON, `{"k":3}`, 400, CodeInvalidArgument, "query"},
		{"empty query", "POST", "/v1/search", ctJSON, `{"query":""}`, 400, CodeInvalidArgument, "query"},
		{"blank query", "POST", "/v1/search", ctJSON, `{"query":" \t\n "}`, 400, CodeInvalidArgument, "query"},
		{"query too long", "POST", "/v1/search", ctJSON, `{"query":"` + strings.Repeat("q", 1025) + `"}`, 400, CodeInvalidArgument, "query"},
		{"age too high", "POST", "/v1/search", ctJSON, `{"query":"a","user":{"age":151}}`, 400, CodeInvalidArgument, "user.age"},
		{"age wrong type", "POST", "/v1/search", ctJSON, `{"query":"a","user":{"age":"ten"}}`, 400, CodeInvalidArgument, "user.age"},
		{"empty user id", "POST", "/v1/search", ctJSON, `{"query":"a","user":{"id":""}}`, 400, CodeInvalidArgument, "user.id"},
		{"control char in user id", "POST", "/v1/search", ctJSON, `{"query":"a","user":{"id":"u\u0000"}}`, 400, CodeInvalidArgument, "user.id"},
		{"price range inverted", "POST", "/v1/search", ctJSON, `{"query":"a","filters":{"price_min":10,"price_max":5}}`, 400, CodeInvalidArgument, "filters.price_min"},
		{"negative price", "POST", "/v1/search", ctJSON, `{"query":"a","filters":{"price_max":-1}}`, 400, CodeInvalidArgument, "filters.price_max"},
		{"price out of range", "POST", "/v1/search", ctJSON, `{"query":"a","filters":{"price_max":1e999}}`, 400, CodeInvalidArgument, "filters.price_max"},
		{"empty category", "POST", "/v1/search", ctJSON, `{"query":"a","filters":{"categories":["x",""]}}`, 400, CodeInvalidArgument, "filters.categories[1]"},
		{"text content type", "POST", "/v1/search", "text/plain", `{"query":"a"}`, 415, CodeUnsupportedMediaType, "Content-Type"},
		{"no content type", "POST", "/v1/search", "", `{"query":"a"}`, 415, CodeUnsupportedMediaType, "Content-Type"},
		{"latin1 charset", "POST", "/v1/search", "application/json; charset=latin1", `{"query":"a"}`, 415, CodeUnsupportedMediaType, "Content-Type"},
		{"oversized body", "POST", "/v1/search", ctJSON, `{"query":"` + strings.Repeat("q", 5000) + `"}`, 413, CodePayloadTooLarge, "body"},
		{"recommend without user and items", "POST", "/v1/recommend", ctJSON, `{}`, 400, CodeInvalidArgument, "recent_items"},
		{"recommend empty items", "POST", "/v1/recommend", ctJSON, `{"recent_items":[]}`, 400, CodeInvalidArgument, "recent_items"},
		{"recommend too many items", "POST", "/v1/recommend", ctJSON, `{"recent_items":[` + recent + `]}`, 400, CodeInvalidArgument, "recent_items"},
		{"recommend blank item", "POST", "/v1/recommend", ctJSON, `{"recent_items":["a"," "]}`, 400, CodeInvalidArgument, "recent_items[1]"},
		{"recommend items not array", "POST", "/v1/recommend", ctJSON, `{"recent_items":"a"}`, 400, CodeInvalidArgument, "recent_items"},
		{"recommend seed too long", "POST", "/v1/recommend", ctJSON, `{"seed_item":"` + strings.Repeat("s", 257) + `"}`, 400, CodeInvalidArgument, "seed_item"},
		{"recommend k too large", "POST", "/v1/recommend", ctJSON, `{"seed_item":"s","k":5000}`, 400, CodeInvalidArgument, "k"},
		{"feedback unknown type", "POST", "/v1/feedback", ctJSON, `{"type":"like","schema_version":1,"timestamp":"2026-03-01T12:00:00Z","user_id":"u","item_id":"i"}`, 400, CodeInvalidArgument, "type"},
		{"feedback future timestamp", "POST", "/v1/feedback", ctJSON, `{"type":"click","schema_version":1,"timestamp":"` + future + `","user_id":"u","item_id":"i"}`, 400, CodeInvalidArgument, "timestamp"},
		{"feedback missing user", "POST", "/v1/feedback", ctJSON, `{"type":"click","schema_version":1,"timestamp":"2026-03-01T12:00:00Z","item_id":"i"}`, 400, CodeInvalidArgument, "user_id"},
		{"feedback bad content type", "POST", "/v1/feedback", "application/x-www-form-urlencoded", `type=click`, 415, CodeUnsupportedMediaType, "Content-Type"},
		{"unknown route", "POST", "/v1/nothing", ctJSON, `{}`, 404, CodeNotFound, "path"},
		{"wrong method", "GET", "/v1/search", "", ``, 405, CodeMethodNotAllowed, "method"},
	}
	env := newTestEnv(t, func(c *Config, _ *Deps) { c.BodyLimitBytes = 4096 })
	env.listen(t) // real connections: see listen
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.do(t, tc.method, tc.path, tc.contentType, tc.body, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.status, r.body)
			}
			e := errorOf(t, r)
			if e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("error code %q field %q, want %q %q (message %q)", e.Code, e.Field, tc.code, tc.field, e.Message)
			}
		})
	}
	if n := env.eng.calls(); n != 0 {
		t.Errorf("engine called %d times for malformed requests", n)
	}
	if n := len(env.pub.published()); n != 0 {
		t.Errorf("publisher got %d events for malformed requests", n)
	}
}

func TestServer_Search(t *testing.T) {
	env := newTestEnv(t, nil)
	body := `{"query":"  red shoes ","k":5,"user":{"id":"u7","age":12},
		"filters":{"categories":["shoes"],"brands":["acme"],"price_min":1.5,"price_max":99},
		"explain":true}`
	r := env.do(t, http.MethodPost, "/v1/search", "application/json; charset=utf-8", body,
		map[string]string{headerRequestID: "trace-42"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	lo, hi := 1.5, 99.0
	want := engine.SearchRequest{
		RequestID: "trace-42", Query: "red shoes", K: 5, User: engine.User{ID: "u7", Age: 12},
		Filters: engine.Filters{Categories: []string{"shoes"}, Brands: []string{"acme"},
			PriceMin: &lo, PriceMax: &hi},
		Explain: true,
	}
	if len(env.eng.searches) != 1 || !reflect.DeepEqual(env.eng.searches[0], want) {
		t.Fatalf("engine got %+v, want %+v", env.eng.searches, want)
	}
	var res engine.Result
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if res.RequestID != "trace-42" || res.Bundle != "b1" || len(res.Items) != 1 || res.Items[0].ID != "i1" {
		t.Fatalf("response %s", r.body)
	}
	if got := r.header.Get(headerRequestID); got != "trace-42" {
		t.Fatalf("X-Request-ID %q", got)
	}
}

func TestServer_SearchDefaults(t *testing.T) {
	env := newTestEnv(t, func(c *Config, _ *Deps) { c.DefaultK = 7 })
	env.eng.result = engine.Result{Bundle: "b1"} // no items at all
	r := env.postJSON(t, "/v1/search", `{"query":"x"}`)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if k := env.eng.searches[0].K; k != 7 {
		t.Errorf("k %d, want the default 7", k)
	}
	// An empty answer is "items": [], never null, and carries the request id.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["items"]) != "[]" {
		t.Errorf("items %s, want []", raw["items"])
	}
	var id string
	if err := json.Unmarshal(raw["request_id"], &id); err != nil || id == "" || id != r.header.Get(headerRequestID) {
		t.Errorf("request_id %s, header %q", raw["request_id"], r.header.Get(headerRequestID))
	}
}

func TestServer_Recommend(t *testing.T) {
	cases := []struct {
		name string
		body string
		want engine.RecommendRequest
	}{
		{"recent items with user", `{"user":{"id":"u1"},"recent_items":["a","b"],"k":3}`,
			engine.RecommendRequest{User: engine.User{ID: "u1"}, RecentItems: []string{"a", "b"}, K: 3}},
		{"recent items without user", `{"recent_items":["a"]}`,
			engine.RecommendRequest{RecentItems: []string{"a"}, K: 10}},
		{"user id only (cold start)", `{"user":{"id":"u1","age":30}}`,
			engine.RecommendRequest{User: engine.User{ID: "u1", Age: 30}, K: 10}},
		{"seed item", `{"seed_item":"s1","filters":{"brands":["acme"]},"explain":true}`,
			engine.RecommendRequest{SeedItem: "s1", K: 10, Filters: engine.Filters{Brands: []string{"acme"}}, Explain: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			r := env.postJSON(t, "/v1/recommend", tc.body)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			tc.want.RequestID = r.header.Get(headerRequestID)
			if len(env.eng.recs) != 1 || !reflect.DeepEqual(env.eng.recs[0], tc.want) {
				t.Fatalf("engine got %+v, want %+v", env.eng.recs, tc.want)
			}
		})
	}
}

func TestServer_EngineErrors(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		code   string
		field  string
		leak   string // text that must not reach the client
	}{
		{"client error", fmt.Errorf("retrieve: %w", &clientErr{field: "query", reason: "no searchable terms"}), 400, CodeInvalidArgument, "query", ""},
		{"engine input error", &engine.InputError{Field: "recent_items[0]", Reason: "malformed id"}, 400, CodeInvalidArgument, "recent_items[0]", ""},
		{"unknown item", &clientErr{field: "seed_item", reason: "unknown item", notFound: true}, 404, CodeNotFound, "seed_item", ""},
		{"not ready", fmt.Errorf("load: %w", engine.ErrNotReady), 503, CodeUnavailable, "", ""},
		{"deadline", fmt.Errorf("rank: %w", context.DeadlineExceeded), 504, CodeDeadlineExceeded, "", ""},
		{"internal", errors.New("onnx session at /srv/models/x.onnx: out of memory"), 500, CodeInternal, "", "/srv/models"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			env.eng.err = tc.err
			r := env.postJSON(t, "/v1/recommend", `{"seed_item":"s"}`)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			e := errorOf(t, r)
			if e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("error %+v, want code %q field %q", e, tc.code, tc.field)
			}
			if tc.leak != "" {
				if strings.Contains(string(r.body), tc.leak) {
					t.Fatalf("internal detail leaked: %s", r.body)
				}
				if !strings.Contains(env.logs.String(), tc.leak) {
					t.Fatalf("internal detail not logged: %s", env.logs.String())
				}
			}
		})
	}
}

func TestServer_Deadline(t *testing.T) {
	env := newTestEnv(t, func(c *Config, _ *Deps) { c.RequestTimeout = 50 * time.Millisecond })
	// The engine honours its context, as the real one does between stages.
	env.eng.hook = func(ctx context.Context) error {
		<-ctx.Done()
		return fmt.Errorf("retrieve: %w", ctx.Err())
	}
	start := time.Now()
	r := env.postJSON(t, "/v1/search", `{"query":"slow"}`)
	if r.status != http.StatusGatewayTimeout || errorOf(t, r).Code != CodeDeadlineExceeded {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("request took %s with a 50ms deadline", took)
	}
	if d := env.eng.deadlines; len(d) != 1 || d[0].Sub(start) > time.Second {
		t.Fatalf("engine deadlines %v", d)
	}
}

func TestServer_Feedback(t *testing.T) {
	click := `{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u1","item_id":"i9","request_id":"r1","position":2}`
	t.Run("accepted after publish", func(t *testing.T) {
		env := newTestEnv(t, nil)
		env.pub.gate = make(chan struct{})
		// env.do may call t.Fatal, which must not run off the test's
		// goroutine; this one reports through the channel instead.
		done := make(chan *http.Response, 1)
		go func() {
			req := httptest.NewRequest(http.MethodPost, "/v1/feedback", strings.NewReader(click))
			req.Header.Set("Content-Type", "application/json")
			resp, err := env.srv.App().Test(req, 5000)
			if err != nil {
				resp = nil
			}
			done <- resp
		}()
		select {
		case resp := <-done:
			t.Fatalf("answered %v before publish returned", resp)
		case <-time.After(100 * time.Millisecond):
		}
		close(env.pub.gate)
		resp := <-done
		if resp == nil {
			t.Fatal("request failed")
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r := response{status: resp.StatusCode, header: resp.Header, body: b}
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var body map[string]string
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		evs := env.pub.published()
		if len(evs) != 1 || evs[0].ItemID != "i9" || evs[0].UserID != "u1" || evs[0].Type != "click" {
			t.Fatalf("published %+v", evs)
		}
		if body["event_id"] == "" || body["event_id"] != evs[0].EventID {
			t.Fatalf("event_id %q, published %q", body["event_id"], evs[0].EventID)
		}
	})
	t.Run("client event id kept", func(t *testing.T) {
		env := newTestEnv(t, nil)
		r := env.postJSON(t, "/v1/feedback", strings.Replace(click, `{`, `{"event_id":"ev-1",`, 1))
		if r.status != http.StatusAccepted || !strings.Contains(string(r.body), `"event_id":"ev-1"`) {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("publisher down", func(t *testing.T) {
		env := newTestEnv(t, nil)
		env.pub.err = errors.New("kafka broker 10.0.0.7:9092 unreachable")
		r := env.postJSON(t, "/v1/feedback", click)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if e := errorOf(t, r); e.Code != CodeUnavailable || strings.Contains(e.Message, "10.0.0.7") {
			t.Fatalf("error %+v", e)
		}
		if strings.Contains(string(r.body), "event_id") {
			t.Fatalf("503 carries an event id: %s", r.body)
		}
	})
}

func TestServer_RequestID(t *testing.T) {
	cases := []struct {
		name   string
		header string
		keep   bool
	}{
		{"sane id kept", "abc-123_X.y:z", true},
		{"absent", "", false},
		{"spaces replaced", "abc 123", false},
		{"too long replaced", strings.Repeat("a", 129), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			h := map[string]string{}
			if tc.header != "" {
				h[headerRequestID] = tc.header
			}
			r := env.do(t, http.MethodPost, "/v1/search", "application/json", `{"query":"x"}`, h)
			got := r.header.Get(headerRequestID)
			if tc.keep && got != tc.header {
				t.Fatalf("got %q, want %q", got, tc.header)
			}
			if !tc.keep && (got == "" || got == tc.header || !saneRequestID([]byte(got))) {
				t.Fatalf("got %q for %q", got, tc.header)
			}
			if env.eng.searches[0].RequestID != got {
				t.Fatalf("engine saw %q, header %q", env.eng.searches[0].RequestID, got)
			}
		})
	}
}

func TestServer_PanicRecovered(t *testing.T) {
	env := newTestEnv(t, nil)
	var once sync.Once
	env.eng.hook = func(context.Context) error {
		var panicked bool
		once.Do(func() { panicked = true })
		if panicked {
			panic("index corrupted")
		}
		return nil
	}
	r := env.postJSON(t, "/v1/search", `{"query":"x"}`)
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if e := errorOf(t, r); e.Code != CodeInternal || strings.Contains(string(r.body), "index corrupted") {
		t.Fatalf("error body %s", r.body)
	}
	logs := env.logs.String()
	if !strings.Contains(logs, "index corrupted") || !strings.Contains(logs, "goroutine") {
		t.Fatalf("panic and stack not logged: %s", logs)
	}
	if r := env.postJSON(t, "/v1/search", `{"query":"x"}`); r.status != http.StatusOK {
		t.Fatalf("server broken after a panic: %d %s", r.status, r.body)
	}
}

func TestServer_Shutdown(t *testing.T) {
	env := newTestEnv(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	env.eng.hook = func(context.Context) error {
		close(started)
		<-release
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- env.srv.Serve(ln) }()
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/v1/search", "application/json", strings.NewReader(`{"query":"x"}`))
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	<-started
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- env.srv.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("shutdown returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if status := <-answered; status != http.StatusOK {
		t.Fatalf("in-flight request got %d", status)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
