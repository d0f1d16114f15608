package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	queryKey    = "query-key-0123456789abcdef"
	feedbackKey = "feedback-key-0123456789abcdef"
	adminKey    = "admin-key-0123456789abcdef"
	userSecret  = "a-user-token-secret-of-32-bytes-or-more"
)

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func testKeys(t *testing.T, userTokens string) *Keys {
	t.Helper()
	k, err := LoadKeys(AuthConfig{
		Keys:       []KeySpec{{Name: "web", SHA256: sha(queryKey), Scopes: []string{ScopeQuery}}, {Name: "ops", SHA256: sha(adminKey), Scopes: []string{ScopeAdmin}}},
		UserTokens: userTokens,
	}, func(name string) string {
		switch name {
		case EnvAPIKeys:
			return "events:feedback:" + feedbackKey
		case EnvUserTokenSecret:
			return userSecret
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAccess_Probes is issue 16's first table: each probe and the answer
// it gets, logged as the table.
func TestAccess_Probes(t *testing.T) {
	env := newTestEnv(t, func(c *Config, d *Deps) {
		d.Keys = testKeys(t, UserTokensRequired)
		c.Limits = LimitsConfig{QueryRPS: 5, QueryBurst: 5}
	})
	bearer := func(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }
	now := env.now
	good := SignUserToken([]byte(userSecret), "u1", now.Add(time.Hour))
	expired := SignUserToken([]byte(userSecret), "u1", now.Add(-time.Minute))
	fbBody := `{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u1","item_id":"i1"}`
	withToken := func(tok string) map[string]string {
		return map[string]string{"X-API-Key": feedbackKey, "X-User-Token": tok}
	}
	probes := []struct {
		name       string
		path, body string
		header     map[string]string
		status     int
		code       string
	}{
		{"search, no key", "/v1/search", `{"query":"q"}`, nil, 401, CodeUnauthenticated},
		{"search, unknown key", "/v1/search", `{"query":"q"}`, bearer("not-a-key-at-all-000"), 401, CodeUnauthenticated},
		{"search, feedback key (wrong scope)", "/v1/search", `{"query":"q"}`, bearer(feedbackKey), 403, CodePermissionDenied},
		{"search, query key", "/v1/search", `{"query":"q"}`, bearer(queryKey), 200, ""},
		{"search, k above the cap", "/v1/search", `{"query":"q","k":5000}`, bearer(queryKey), 400, CodeInvalidArgument},
		{"feedback, query key (wrong scope)", "/v1/feedback", fbBody, bearer(queryKey), 403, CodePermissionDenied},
		{"feedback, no user token", "/v1/feedback", fbBody, map[string]string{"X-API-Key": feedbackKey}, 401, CodeUnauthenticated},
		{"feedback, expired user token", "/v1/feedback", fbBody, withToken(expired), 401, CodeUnauthenticated},
		{"feedback, forged user token", "/v1/feedback", fbBody, withToken(good[:len(good)-2] + "xx"), 401, CodeUnauthenticated},
		{"feedback, another user's token", "/v1/feedback", `{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u2","item_id":"i1"}`, withToken(good), 403, CodePermissionDenied},
		{"feedback, own user token", "/v1/feedback", fbBody, withToken(good), 202, ""},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-38s %6s  %s\n", "probe", "status", "error code")
	for _, p := range probes {
		r := env.do(t, http.MethodPost, p.path, "application/json", p.body, p.header)
		code := errorCode(r.body)
		fmt.Fprintf(&table, "%-38s %6d  %s\n", p.name, r.status, code)
		if r.status != p.status || code != p.code {
			t.Errorf("%s: %d %s, want %d %q", p.name, r.status, r.body, p.status, p.code)
		}
	}
	// A flood: the bucket holds 5, refilling 5/s; the in-memory transport
	// sends far faster, so the 6th answers 429 with Retry-After.
	var limited response
	for i := 0; i < 20; i++ {
		r := env.do(t, http.MethodPost, "/v1/search", "application/json", `{"query":"q"}`, bearer(queryKey))
		if r.status == http.StatusTooManyRequests {
			limited = r
			break
		}
	}
	fmt.Fprintf(&table, "%-38s %6d  %s (Retry-After: %s)\n", "search flood past 5/s", limited.status, errorCode(limited.body), limited.header.Get("Retry-After"))
	if limited.status != http.StatusTooManyRequests || limited.header.Get("Retry-After") == "" || errorCode(limited.body) != CodeRateLimited {
		t.Errorf("flood: %d %v %s", limited.status, limited.header, limited.body)
	}
	if !strings.Contains(metricText(t, env), `recsys_http_rate_limited_total{class="query"}`) {
		t.Error("the 429 was not counted")
	}
	t.Logf("access probes:\n%s", table.String())
}

func errorCode(body []byte) string {
	const k = `"code":"`
	i := strings.Index(string(body), k)
	if i < 0 {
		return ""
	}
	rest := string(body)[i+len(k):]
	return rest[:strings.IndexByte(rest, '"')]
}

func metricText(t *testing.T, env *testEnv) string {
	t.Helper()
	r := env.do(t, http.MethodGet, "/metrics", "", "", nil)
	return string(r.body)
}

func TestLoadKeys_Errors(t *testing.T) {
	_, err := LoadKeys(AuthConfig{
		Keys:       []KeySpec{{Name: "a", SHA256: "plaintext-key", Scopes: []string{ScopeQuery}}, {Name: "b", SHA256: sha("x"), Scopes: []string{"write"}}},
		UserTokens: UserTokensRequired,
	}, func(name string) string {
		if name == EnvAPIKeys {
			return "short:query:abc"
		}
		return ""
	})
	for _, want := range []string{"auth.keys[0].sha256: must be 64 hex digits", `auth.keys[1].scopes: unknown scope "write"`,
		"RECSYS_API_KEYS[0]: want name:scope+scope:key with a key of at least 16", "auth.user_tokens: required needs RECSYS_USER_TOKEN_SECRET"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadKeys error %v lacks %q", err, want)
		}
	}
}

func TestCheckExposure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminAddr = "0.0.0.0:8081"
	if _, err := CheckExposure(cfg, nil); err == nil || !strings.Contains(err.Error(), "server.admin_addr: 0.0.0.0:8081 is not a loopback address") {
		t.Fatalf("non-loopback admin without a key: %v", err)
	}
	if _, err := CheckExposure(cfg, testKeys(t, UserTokensOff)); err != nil {
		t.Fatalf("with an admin key: %v", err)
	}
	cfg.AdminAddr, cfg.Addr = "127.0.0.1:8081", "0.0.0.0:8080"
	if w, err := CheckExposure(cfg, nil); err != nil || !strings.Contains(w, "no API key is configured") {
		t.Fatalf("public API without keys: %q, %v", w, err)
	}
}

// TestAdmin_KeysTimeoutsAndPaths: the admin listener needs the admin
// scope, cuts a client that sends its headers too slowly, and never echoes
// a filesystem path.
func TestAdmin_KeysTimeoutsAndPaths(t *testing.T) {
	a, err := NewAdmin(AdminDeps{
		Reload: func(context.Context) (string, string, error) {
			return "v1", "v1", errors.New("load bundle v2: open /srv/recsys/var/bundles/v2/index.snap: no such file or directory")
		},
		Live:        func() string { return "v1" },
		Keys:        testKeys(t, UserTokensOff),
		ReadTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(ln)
	defer a.Shutdown(context.Background())
	base := "http://" + ln.Addr().String()
	do := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/admin/reload", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do(""); code != 401 {
		t.Fatalf("admin without a key: %d %s", code, body)
	}
	if code, body := do(queryKey); code != 403 {
		t.Fatalf("admin with a query key: %d %s", code, body)
	}
	code, body := do(adminKey)
	if code != http.StatusConflict || strings.Contains(body, "/srv/") || !strings.Contains(body, "index.snap") {
		t.Fatalf("refused reload: %d %s (want 409 naming the file, not its path)", code, body)
	}
	// Slow headers: half a request line, then silence.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprint(conn, "GET /admin/bundle HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	if took := time.Since(start); err != nil || took > 3*time.Second {
		t.Fatalf("slow headers: connection still open after %v (err %v)", took, err)
	}
	t.Logf("slow admin headers cut after %v", time.Since(start).Round(time.Millisecond))
}

// TestServer_UnknownMethodIsJSON: a method fiber does not know gets the
// API's JSON error, not fasthttp's plain text.
func TestServer_UnknownMethodIsJSON(t *testing.T) {
	env := newTestEnv(t, nil)
	r := env.do(t, "BREW", "/v1/search", "", "", nil)
	if r.status != http.StatusBadRequest || errorCode(r.body) != CodeInvalidArgument || !strings.Contains(string(r.body), `"field":"method"`) {
		t.Fatalf("BREW: %d %s", r.status, r.body)
	}
}

// TestServer_CostCaps: recent items and batch sizes above the configured
// caps are 400s naming the field.
func TestServer_CostCaps(t *testing.T) {
	env := newTestEnv(t, func(c *Config, _ *Deps) { c.MaxRecentItems, c.MaxBatchEvents = 2, 1 })
	r := env.do(t, http.MethodPost, "/v1/recommend", "application/json", `{"recent_items":["a","b","c"]}`, nil)
	if r.status != 400 || !strings.Contains(string(r.body), `"field":"recent_items"`) || !strings.Contains(string(r.body), "at most 2") {
		t.Fatalf("3 recent items over a cap of 2: %d %s", r.status, r.body)
	}
	ev := `{"type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u1","item_id":"i1"}`
	r = env.do(t, http.MethodPost, "/v1/feedback/batch", "application/json", `{"events":[`+ev+`,`+ev+`]}`, nil)
	if r.status != 400 || !strings.Contains(string(r.body), `"field":"events"`) {
		t.Fatalf("2 events over a cap of 1: %d %s", r.status, r.body)
	}
}
