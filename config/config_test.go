package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The shipped config.yaml documents the defaults; the two must not drift.
func TestParse_ConfigYAMLIsDefault(t *testing.T) {
	b, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b, nil)
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("config.yaml differs from Default():\n got  %+v\n want %+v", got, want)
	}
}

func TestParse_Testdata(t *testing.T) {
	wantErr := map[string][]string{
		"unknown-key.bad.yml":    {"line 2: server.adress: unknown key", "line 4: engine.candidtes: unknown key (did you mean engine.candidates?)", "line 8: rules.business[0].actoin: unknown key (did you mean rules.business[0].action?)"},
		"bad-values.bad.yml":     {"engine.candidates: must be in 1..10000", "engine.recent_decay", "bundles.keep: must be >= 1", "log.level"},
		"wrong-type.bad.yml":     {"cannot unmarshal", "many"},
		"bad-broker.bad.yml":     {"kafka.brokers[0]"},
		"bad-feature.bad.yml":    {"rank.features[1]", "shoe_size"},
		"bad-rule.bad.yml":       {"age-limit", "line 1", "column"},
		"embedded-redis.bad.yml": {"redis.tls, username: for a real server", "redis.db: the embedded server serves database 0 only"},
	}
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			_, err := Load(f, nil)
			if strings.HasSuffix(name, ".good.yml") {
				if err != nil {
					t.Fatalf("good config refused: %v", err)
				}
				return
			}
			want, ok := wantErr[name]
			if !ok {
				t.Fatalf("bad config %s has no expected error in the table", name)
			}
			if err == nil {
				t.Fatal("bad config accepted")
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParse_WeightsReplaceDefaults(t *testing.T) {
	cfg, err := Load("testdata/real-clusters.good.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rank.Weights) != 1 || cfg.Rank.Weights["retrieval_score"] != 2 {
		t.Fatalf("weights = %v, want exactly {retrieval_score: 2}", cfg.Rank.Weights)
	}
}

func TestParse_Env(t *testing.T) {
	cases := []struct {
		name    string
		env     []string
		check   func(*Config) bool
		wantErr string
	}{
		{"string", []string{"RECSYS_SERVER_ADDR=0.0.0.0:1234"}, func(c *Config) bool { return c.Server.Addr == "0.0.0.0:1234" }, ""},
		{"list", []string{"RECSYS_KAFKA_BROKERS=a:1, b:2"}, func(c *Config) bool { return reflect.DeepEqual(c.Kafka.Brokers, []string{"a:1", "b:2"}) }, ""},
		{"duration", []string{"RECSYS_ENGINE_RANK_TIMEOUT=250ms"}, func(c *Config) bool { return c.Engine.RankTimeout == 250*time.Millisecond }, ""},
		{"nested", []string{"RECSYS_EMBEDDED_KAFKA_DATA_DIR=/data/k"}, func(c *Config) bool { return c.Embedded.Kafka.DataDir == "/data/k" }, ""},
		{"bool", []string{"RECSYS_EMBED_MODEL_FEATURIZER_BIGRAMS=false"}, func(c *Config) bool { return !c.Embed.Model.Featurizer.Bigrams }, ""},
		{"inlined struct", []string{"RECSYS_INDEX_EF_SEARCH=64", "RECSYS_RANK_FETCH_TIMEOUT=20ms"}, func(c *Config) bool {
			return c.Index.EfSearch == 64 && c.Rank.FetchTimeout == 20*time.Millisecond
		}, ""},
		{"lexical field weight", []string{"RECSYS_INDEX_LEXICAL_FIELDS_TITLE=1", "RECSYS_INDEX_LEXICAL_STEMMER=none"}, func(c *Config) bool {
			return c.Index.Lexical.Fields.Title == 1 && c.Index.Lexical.Stemmer == "none"
		}, ""},
		{"retrieval mode", []string{"RECSYS_ENGINE_RETRIEVAL_MODE=dense"}, func(c *Config) bool { return c.Engine.Retrieval.Mode == "dense" }, ""},
		{"bad retrieval mode", []string{"RECSYS_ENGINE_RETRIEVAL_MODE=bm25"}, nil, "engine.retrieval.mode: must be hybrid, lexical or dense"},
		{"spool after past the deadline", []string{"RECSYS_KAFKA_SPOOL_AFTER=1500ms"}, nil,
			"kafka.spool_after: 1.5s must be at most half of server.request_timeout (2s)"},
		{"no spool, produce timeout past the deadline", []string{"RECSYS_KAFKA_SPOOL_DIR="}, nil,
			"kafka.produce_timeout: 5s must be below server.request_timeout (2s) when kafka.spool.dir is empty"},
		{"no spool, short produce timeout", []string{"RECSYS_KAFKA_SPOOL_DIR=", "RECSYS_KAFKA_PRODUCE_TIMEOUT=1s"},
			func(c *Config) bool { return c.Kafka.Spool.Dir == "" }, ""},
		{"fetch timeout past the rank timeout", []string{"RECSYS_RANK_FETCH_TIMEOUT=200ms"}, nil,
			"rank.fetch_timeout: 200ms must be below engine.rank_timeout (100ms)"},
		{"rank timeout past the deadline", []string{"RECSYS_ENGINE_RANK_TIMEOUT=3s", "RECSYS_RANK_FETCH_TIMEOUT=1s"}, nil,
			"engine.rank_timeout: 3s must be below server.request_timeout (2s)"},
		{"max k past the engine's", []string{"RECSYS_SERVER_MAX_K=5000"}, nil, "server.max_k: must be in 1..1000"},
		{"secret ignored", []string{"RECSYS_REDIS_PASSWORD=s3cret"}, func(c *Config) bool { return true }, ""},
		{"bad number", []string{"RECSYS_ENGINE_CANDIDATES=lots"}, nil, "RECSYS_ENGINE_CANDIDATES (engine.candidates)"},
		{"validated", []string{"RECSYS_ENGINE_CANDIDATES=0"}, nil, "engine.candidates: must be in 1..10000"},
		{"unknown", []string{"RECSYS_SERVER_ADRESS=x"}, nil, "RECSYS_SERVER_ADRESS: matches no configuration key"},
		{"other prefixes ignored", []string{"HOME=/root", "RECSYSX=1"}, func(c *Config) bool { return true }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(nil, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Fatalf("override not applied: %+v", cfg)
			}
		})
	}
}
