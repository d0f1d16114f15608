package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/recsys-dev/recsys/api"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/feedback/counters"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/rules"
)

// Config is the whole configuration of the binary.
type Config struct {
	Log         Log              `yaml:"log"`
	Server      api.Config       `yaml:"server"`
	Bundles     Bundles          `yaml:"bundles"`
	Build       Build            `yaml:"build"`
	Embed       Embed            `yaml:"embed"`
	Index       Index            `yaml:"index"`
	Engine      engine.Config    `yaml:"engine"`
	Rank        Rank             `yaml:"rank"`
	Rules       rules.Config     `yaml:"rules"`
	Redis       rank.RedisConfig `yaml:"redis"`
	Kafka       Kafka            `yaml:"kafka"`
	Embedded    Embedded         `yaml:"embedded"`
	ONNXRuntime ONNXRuntime      `yaml:"onnxruntime"`
}

// ONNXRuntime locates the ONNX Runtime shared library.
type ONNXRuntime struct {
	Library string `yaml:"library"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Bundles says where bundles live and how the server follows them.
type Bundles struct {
	Dir string `yaml:"dir"`
	// Keep is how many published bundles a build leaves on disk (the current
	// one is never removed), so a rollback target is always there.
	Keep int `yaml:"keep"`
	// PollInterval is how often serve checks CURRENT for a new version; 0
	// disables polling (SIGHUP and POST /admin/reload still reload).
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Build configures `recsys build`.
type Build struct {
	Catalog string `yaml:"catalog"` // JSONL or CSV
	// Ranker is the ranking model file `recsys train rank` promotes into;
	// build puts it in the bundle when it exists and the linear model of
	// rank.weights otherwise. Empty always builds the linear model.
	Ranker string `yaml:"ranker"`
	// Sources trains the recommendation candidate sources from the event
	// log (kafka.topic) at every build.
	Sources offline.SourcesConfig `yaml:"sources"`
}

// Embed holds the embedding model's build parameters and its runtime settings.
type Embed struct {
	// ModelFile is a trained embedding model (written by `recsys train
	// embed`) that builds embed with; empty builds the untrained model of
	// Model. The file carries its own featurizer, so Model does not apply
	// to it.
	ModelFile string              `yaml:"model_file"`
	Model     embed.ModelConfig   `yaml:"model"`
	Runtime   embed.EncoderConfig `yaml:"runtime"`
}

// Kafka is the event log's connection and spool, and, under counters, the
// real-time counter updater that consumes it.
type Kafka struct {
	eventlog.Config `yaml:",inline"`
	// ItemsTopic carries item upserts and deletes between rebuilds (the
	// live catalog); empty turns the live catalog off.
	ItemsTopic string          `yaml:"items_topic"`
	Counters   counters.Config `yaml:"counters"`
}

// Index holds the vector index settings and, under lexical, the BM25F
// index built beside it.
type Index struct {
	index.Config `yaml:",inline"`
	Lexical      index.LexicalConfig `yaml:"lexical"`
}

// Rank holds the feature specs and linear weights, and the scorer's runtime settings.
type Rank struct {
	rank.Config `yaml:",inline"`
	Runtime     rank.ScorerConfig `yaml:"runtime"`
}

// Embedded configures the in-process stand-ins used when redis.addr or
// kafka.brokers are empty. They speak the real wire protocols on 127.0.0.1.
type Embedded struct {
	Kafka     eventlog.BrokerConfig `yaml:"kafka"`
	RedisAddr string                `yaml:"redis_addr"`
}

// Load reads path, applies env (os.Environ() form) and validates.
func Load(path string, env []string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	cfg, err := Parse(b, env)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes b strictly over the defaults, applies env and validates.
func Parse(b []byte, env []string) (*Config, error) {
	cfg := Default()
	if errs := unknownKeys(b, reflect.TypeOf(cfg)); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// yaml.v3 merges a map into the default one; a file that lists weights
	// means exactly those weights.
	var probe struct {
		Rank struct {
			Weights map[string]float32 `yaml:"weights"`
		} `yaml:"rank"`
	}
	if err := yaml.Unmarshal(b, &probe); err == nil && probe.Rank.Weights != nil {
		cfg.Rank.Weights = probe.Rank.Weights
	}
	if err := applyEnv(cfg, env); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate checks every section and joins the errors, each prefixed with
// its section's key.
func (c *Config) Validate() error {
	var errs []error
	add := func(section string, err error) {
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, fmt.Errorf("%s.%s", section, line))
		}
	}
	add("log", c.Log.validate())
	add("server", c.Server.Validate())
	add("bundles", c.Bundles.validate())
	if c.Build.Catalog == "" {
		add("build", errors.New("catalog: must be set"))
	}
	add("build.sources", c.Build.Sources.Validate())
	add("embed.model", c.Embed.Model.Validate())
	// Model paths come from the bundle being loaded, not from this file.
	embedRuntime, rankRuntime := c.Embed.Runtime, c.Rank.Runtime
	embedRuntime.ModelPath, rankRuntime.ModelPath = "from-bundle", "from-bundle"
	add("embed.runtime", embedRuntime.Validate())
	add("index", c.Index.Config.Validate())
	add("index.lexical", c.Index.Lexical.Validate())
	add("engine", c.Engine.Validate())
	add("rank", c.Rank.Config.Validate())
	add("rank.runtime", rankRuntime.Validate())
	// Compiling is the only full check of a rule; its errors carry their
	// "rules." key paths already.
	if _, err := rules.Compile(c.Rules); err != nil {
		errs = append(errs, err)
	}
	// An empty address selects the embedded server; the section's other
	// keys are still checked, against a placeholder address.
	redisCfg, kafkaCfg := c.Redis, c.Kafka.Config
	if redisCfg.Addr == "" && (redisCfg.Mode == "" || redisCfg.Mode == rank.RedisSingle) {
		redisCfg.Addr = "127.0.0.1:6379"
		if redisCfg.TLS.Enabled || redisCfg.Username != "" {
			add("redis", errors.New("tls, username: for a real server (redis.addr); the embedded one speaks plaintext on 127.0.0.1"))
		}
		// Its native counter scripts and its expiry keep database 0.
		if redisCfg.DB != 0 {
			add("redis", errors.New("db: the embedded server serves database 0 only; set redis.addr to use another"))
		}
	}
	if len(kafkaCfg.Brokers) == 0 {
		kafkaCfg.Brokers = []string{"127.0.0.1:9092"}
		// The embedded broker speaks plaintext on loopback only.
		if kafkaCfg.TLS.Enabled || kafkaCfg.SASL.Mechanism != "" {
			add("kafka", errors.New("tls, sasl: for a real cluster (kafka.brokers); the embedded broker speaks plaintext on 127.0.0.1"))
		}
	}
	add("redis", redisCfg.Validate())
	add("kafka", kafkaCfg.Validate())
	add("kafka.counters", c.Kafka.Counters.Validate())
	if t := c.Kafka.ItemsTopic; t != "" {
		if err := eventlog.CheckTopicName(t); err != nil {
			add("kafka", fmt.Errorf("items_topic: %w", err))
		} else if t == c.Kafka.WithDefaults().Topic || t == c.Kafka.WithDefaults().DeadLetterTopic {
			add("kafka", errors.New("items_topic: must differ from topic and dead_letter_topic"))
		}
	}
	add("embedded.kafka", c.Embedded.Kafka.Validate())
	if c.ONNXRuntime.Library == "" {
		add("onnxruntime", errors.New("library: must be set"))
	}
	errs = append(errs, c.crossChecks()...)
	return errors.Join(errs...)
}

// crossChecks validates the constraints between sections, which no
// section's own Validate can see. Each error names both keys.
func (c *Config) crossChecks() []error {
	var errs []error
	deadline := c.Server.RequestTimeout
	k := c.Kafka.WithDefaults()
	if c.Kafka.Spool.Dir != "" {
		// The spool is tried only after spool_after; the fsync that
		// follows needs time of its own before the request deadline.
		if k.SpoolAfter > deadline/2 {
			errs = append(errs, fmt.Errorf("kafka.spool_after: %v must be at most half of server.request_timeout (%v), "+
				"or requests time out before their events are spooled", k.SpoolAfter, deadline))
		}
	} else if k.ProduceTimeout >= deadline {
		errs = append(errs, fmt.Errorf("kafka.produce_timeout: %v must be below server.request_timeout (%v) when kafka.spool.dir is empty, "+
			"or a slow broker turns every feedback request into a timeout", k.ProduceTimeout, deadline))
	}
	if c.Rank.FetchTimeout >= c.Engine.RankTimeout {
		errs = append(errs, fmt.Errorf("rank.fetch_timeout: %v must be below engine.rank_timeout (%v)", c.Rank.FetchTimeout, c.Engine.RankTimeout))
	}
	if c.Engine.RankTimeout >= deadline {
		errs = append(errs, fmt.Errorf("engine.rank_timeout: %v must be below server.request_timeout (%v)", c.Engine.RankTimeout, deadline))
	}
	return errs
}

func (l Log) validate() error {
	var errs []error
	if _, err := l.SlogLevel(); err != nil {
		errs = append(errs, err)
	}
	if l.Format != "text" && l.Format != "json" {
		errs = append(errs, fmt.Errorf("format: must be text or json, got %q", l.Format))
	}
	return errors.Join(errs...)
}

// SlogLevel returns the configured level.
func (l Log) SlogLevel() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, fmt.Errorf("level: must be debug, info, warn or error, got %q", l.Level)
	}
	return lv, nil
}

// Logger builds the process logger on w.
func (l Log) Logger(w io.Writer) *slog.Logger {
	lv, _ := l.SlogLevel()
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (b Bundles) validate() error {
	var errs []error
	if b.Dir == "" {
		errs = append(errs, errors.New("dir: must be set"))
	}
	if b.Keep < 1 {
		errs = append(errs, fmt.Errorf("keep: must be >= 1, got %d", b.Keep))
	}
	if b.PollInterval < 0 {
		errs = append(errs, errors.New("poll_interval: must be >= 0"))
	}
	return errors.Join(errs...)
}
