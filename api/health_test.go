package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/recsys-dev/recsys/feedback"
)

func TestServer_Healthz(t *testing.T) {
	env := newTestEnv(t, func(_ *Config, d *Deps) {
		// Liveness must not depend on readiness: a failing Redis must not
		// get the process restarted.
		d.Checks = []Check{{Name: "redis", Fn: func(context.Context) error { return errors.New("down") }}}
	})
	r := env.do(t, http.MethodGet, "/healthz", "", "", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"ok"`) {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestServer_Readyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("dial 10.1.1.1:6379: refused") }
	cases := []struct {
		name    string
		checks  []Check
		status  int
		failing []string
		want    string
	}{
		{"no checks", nil, 200, nil, "ready"},
		{"all pass", []Check{{"bundle", ok, false}, {"redis", ok, true}, {"kafka", ok, false}}, 200, nil, "ready"},
		{"one fails", []Check{{"bundle", ok, false}, {"redis", down, false}, {"kafka", ok, false}}, 503, []string{"redis"}, "not_ready"},
		{"a degrading check fails", []Check{{"bundle", ok, false}, {"redis", down, true}, {"kafka", ok, false}}, 200, []string{"redis"}, "degraded"},
		{"degrading and hard fail", []Check{{"bundle", down, false}, {"redis", down, true}}, 503, []string{"bundle", "redis"}, "not_ready"},
		{"honours timeout", []Check{{"kafka", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, false}, {"bundle", ok, false}}, 503, []string{"kafka"}, "not_ready"},
		{"ignores timeout", []Check{{"bundle", ok, false}, {"stuck", func(context.Context) error { time.Sleep(time.Second); return nil }, false}}, 503, []string{"stuck"}, "not_ready"},
		{"panics", []Check{{"bundle", func(context.Context) error { panic("nil bundle") }, false}}, 503, []string{"bundle"}, "not_ready"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, func(c *Config, d *Deps) {
				c.CheckTimeout = 100 * time.Millisecond
				d.Checks = tc.checks
			})
			start := time.Now()
			r := env.do(t, http.MethodGet, "/readyz", "", "", nil)
			if took := time.Since(start); took > 800*time.Millisecond {
				t.Fatalf("readyz took %s with a 100ms check timeout", took)
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var body readyBody
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(body.Failing, tc.failing) || len(body.Checks) != len(tc.checks) {
				t.Fatalf("body %s, want failing %v", r.body, tc.failing)
			}
			if body.Status != tc.want {
				t.Fatalf("status %q, want %q", body.Status, tc.want)
			}
			if strings.Contains(string(r.body), "10.1.1.1") {
				t.Fatalf("check error leaked: %s", r.body)
			}
			if tc.failing != nil && !strings.Contains(env.logs.String(), "readiness check failed") {
				t.Fatalf("failure not logged")
			}
		})
	}
}

func TestServer_Metrics(t *testing.T) {
	env := newTestEnv(t, nil)
	env.postJSON(t, "/v1/search", `{"query":"x"}`)
	env.postJSON(t, "/v1/search", `{"query":"x"}`)
	env.postJSON(t, "/v1/search", `{"k":0}`)
	env.postJSON(t, "/v1/no/such/route", `{}`)
	r := env.do(t, http.MethodGet, "/metrics", "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	text := string(r.body)
	for _, want := range []string{
		`recsys_http_requests_total{method="POST",route="/v1/search",status="200"} 2`,
		`recsys_http_requests_total{method="POST",route="/v1/search",status="400"} 1`,
		`recsys_http_requests_total{method="POST",route="unmatched",status="404"} 1`,
		`recsys_http_request_duration_seconds_count{route="/v1/search"} 3`,
		`recsys_http_request_duration_seconds_bucket{route="/v1/search",le="0.001"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "/v1/no/such/route") {
		t.Errorf("raw path used as a label")
	}
}

func TestServer_AccessLog(t *testing.T) {
	env := newTestEnv(t, nil)
	r := env.do(t, http.MethodPost, "/v1/search", "application/json", `{"query":"x"}`, map[string]string{headerRequestID: "log-me"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(env.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		// Debug, or info when the 1% sample (server.access_log) took it.
		if rec["msg"] == "http request" && (rec["level"] == "DEBUG" || rec["level"] == "INFO") && rec["request_id"] == "log-me" &&
			rec["route"] == "/v1/search" && rec["status"] == float64(200) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no access log entry in %s", env.logs.String())
	}
}

// TestServer_AccessLogSample: with access_log 1 every request is an
// info line, carrying the client and the key's name.
func TestServer_AccessLogSample(t *testing.T) {
	env := newTestEnv(t, func(c *Config, d *Deps) {
		c.AccessLog = 1
		d.Keys = testKeys(t, UserTokensOff)
	})
	env.do(t, http.MethodPost, "/v1/search", "application/json", `{"query":"x"}`, map[string]string{"X-API-Key": queryKey})
	if s := env.logs.String(); !strings.Contains(s, `"level":"INFO","msg":"http request"`) || !strings.Contains(s, `"key":"web"`) {
		t.Fatalf("no sampled info access line with the key: %s", s)
	}
}

func TestServer_OpenAPI(t *testing.T) {
	env := newTestEnv(t, nil)
	r := env.do(t, http.MethodGet, "/openapi.yaml", "", "", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("status %d, content type %q", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("spec is not YAML: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	// Every route the server registers is documented with its method, and
	// nothing undocumented is served.
	var served []string
	for _, rt := range env.srv.App().GetRoutes(true) {
		if rt.Path == "/" || rt.Method == http.MethodHead {
			continue // the middleware and fiber's implicit HEAD routes
		}
		served = append(served, strings.ToLower(rt.Method)+" "+rt.Path)
	}
	// The admin listener's routes are documented in the same spec.
	admin, err := NewAdmin(AdminDeps{Reload: func(context.Context) (string, string, error) { return "", "", nil }, Live: func() string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range admin.App().GetRoutes(true) {
		if rt.Path != "/" && rt.Method != http.MethodHead {
			// fiber's :param is OpenAPI's {param}.
			served = append(served, strings.ToLower(rt.Method)+" "+strings.ReplaceAll(rt.Path, ":id", "{id}"))
		}
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" { // shared by the path's operations
				documented = append(documented, method+" "+path)
			}
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !reflect.DeepEqual(served, documented) {
		t.Fatalf("served %v, documented %v", served, documented)
	}
	// The error codes a client can get are the ones the spec lists.
	var spec struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct {
									Enum []string `yaml:"enum"`
								} `yaml:"code"`
							} `yaml:"properties"`
						} `yaml:"error"`
					} `yaml:"properties"`
				} `yaml:"Error"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(r.body, &spec); err != nil {
		t.Fatal(err)
	}
	codes := []string{CodeInvalidArgument, CodeNotFound, CodeMethodNotAllowed, CodePayloadTooLarge,
		CodeUnsupportedMediaType, CodeUnavailable, CodeDeadlineExceeded, CodeCanceled, CodeInternal,
		CodeUnauthenticated, CodePermissionDenied, CodeRateLimited, CodeLiveCatalogOff, CodeBundleRefused}
	got := spec.Components.Schemas.Error.Properties.Error.Properties.Code.Enum
	slices.Sort(codes)
	slices.Sort(got)
	if !slices.Equal(codes, got) {
		t.Fatalf("spec codes %v, code constants %v", got, codes)
	}
}

// TestOpenAPI_EventSchemasMatchTheCode: the documented properties of
// FeedbackEvent and ImpressionItem are exactly the JSON fields the decoder
// accepts, so a field added to the code is documented (the decoder is
// strict: an undocumented field would be refused by nothing a client reads).
func TestOpenAPI_EventSchemasMatchTheCode(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openapiSpec, &doc); err != nil {
		t.Fatal(err)
	}
	for schema, typ := range map[string]reflect.Type{
		"FeedbackEvent":  reflect.TypeFor[feedback.Event](),
		"ImpressionItem": reflect.TypeFor[feedback.ImpressionItem](),
	} {
		var fields, documented []string
		for f := range typ.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				fields = append(fields, name)
			}
		}
		for p := range doc.Components.Schemas[schema].Properties {
			documented = append(documented, p)
		}
		slices.Sort(fields)
		slices.Sort(documented)
		if !slices.Equal(fields, documented) {
			t.Errorf("%s: the code has %v, the spec documents %v", schema, fields, documented)
		}
	}
}
