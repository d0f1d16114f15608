package api

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name  string
		tweak func(*Config)
		want  []string // substrings of the error; none means valid
	}{
		{"default", func(*Config) {}, nil},
		{"empty addr", func(c *Config) { c.Addr = "" }, []string{"addr: must not be empty"}},
		{"addr without port", func(c *Config) { c.Addr = "localhost" }, []string{"addr: must be host:port"}},
		{"admin disabled", func(c *Config) { c.AdminAddr = "" }, nil},
		{"admin addr without port", func(c *Config) { c.AdminAddr = "localhost" }, []string{"admin_addr: must be host:port or empty"}},
		{"admin on the public addr", func(c *Config) { c.AdminAddr = c.Addr }, []string{"admin_addr: must differ from addr"}},
		{"pprof on loopback", func(c *Config) { c.PprofAddr = "127.0.0.1:0" }, nil},
		{"pprof on all interfaces", func(c *Config) { c.PprofAddr = "0.0.0.0:6060" }, []string{"pprof_addr: must be a loopback host:port"}},
		{"pprof without port", func(c *Config) { c.PprofAddr = "127.0.0.1" }, []string{"pprof_addr: must be a loopback host:port"}},
		{"both on port 0", func(c *Config) { c.Addr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0" }, nil},
		{"zero body limit", func(c *Config) { c.BodyLimitBytes = 0 }, []string{"body_limit_bytes: must be > 0"}},
		{"gc off without a limit", func(c *Config) { c.GCPercent = -1 }, []string{"gc_percent: -1 (no collection but at the memory limit) needs memory_limit_bytes"}},
		{"gc percent zero", func(c *Config) { c.GCPercent = 0 }, []string{"gc_percent: must be > 0, or -1 with memory_limit_bytes"}},
		{"negative memory limit", func(c *Config) { c.MemoryLimitBytes = -1 }, []string{"memory_limit_bytes: must be >= 0 (0: no limit)"}},
		{"zero request timeout", func(c *Config) { c.RequestTimeout = 0 }, []string{"request_timeout: must be > 0"}},
		{"zero max k", func(c *Config) { c.MaxK = 0 }, []string{"max_k: must be in 1..1000"}},
		{"default k above max", func(c *Config) { c.MaxK, c.DefaultK = 5, 10 }, []string{"default_k: must be <= max_k (5)"}},
		{"negative default k", func(c *Config) { c.DefaultK = -1 }, []string{"default_k: must be > 0"}},
		{"zero read timeout", func(c *Config) { c.ReadTimeout = 0 }, []string{"read_timeout: must be > 0"}},
		{"write timeout not above request timeout", func(c *Config) { c.WriteTimeout = c.RequestTimeout },
			[]string{"write_timeout: must be > request_timeout"}},
		{"zero check timeout", func(c *Config) { c.CheckTimeout = 0 }, []string{"check_timeout: must be > 0"}},
		{"several at once", func(c *Config) { c.MaxK, c.ReadTimeout, c.CheckTimeout = -1, -time.Second, 0 },
			[]string{"max_k:", "read_timeout:", "check_timeout:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.tweak(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestServer_New(t *testing.T) {
	eng, pub := &fakeEngine{}, &fakePublisher{}
	reg := prometheus.NewRegistry()
	cases := []struct {
		name string
		cfg  func(*Config)
		deps Deps
		want string
	}{
		{"minimal deps", nil, Deps{Engine: eng, Feedback: pub}, ""},
		{"bad config", func(c *Config) { c.MaxK = 0 }, Deps{Engine: eng, Feedback: pub}, "max_k: must be in 1..1000"},
		{"no engine", nil, Deps{Feedback: pub}, "deps.Engine is required"},
		{"no publisher", nil, Deps{Engine: eng}, "deps.Feedback is required"},
		{"check without fn", nil, Deps{Engine: eng, Feedback: pub, Checks: []Check{{Name: "redis"}}}, "deps.Checks[0]"},
		{"registerer without gatherer", nil, Deps{Engine: eng, Feedback: pub, Registerer: reg}, "must be set together"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			_, err := New(cfg, tc.deps)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("metrics registered twice", func(t *testing.T) {
		deps := Deps{Engine: eng, Feedback: pub, Registerer: reg, Gatherer: reg}
		if _, err := New(DefaultConfig(), deps); err != nil {
			t.Fatal(err)
		}
		if _, err := New(DefaultConfig(), deps); err == nil || !strings.Contains(err.Error(), "register metrics") {
			t.Fatalf("second server on one registry: %v", err)
		}
	})
}
