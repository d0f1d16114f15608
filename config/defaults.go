package config

import (
	"time"

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

// Default returns the configuration config.yaml spells out: the one-machine
// setup with embedded Kafka and Redis. A test keeps the two identical.
func Default() *Config {
	return &Config{
		Log:     Log{Level: "info", Format: "text"},
		Server:  api.DefaultConfig(),
		Bundles: Bundles{Dir: "var/bundles", Keep: 5, PollInterval: 10 * time.Second},
		Build:   Build{Catalog: "var/world/catalog.jsonl", Ranker: "var/models/ranker.onnx", Sources: offline.DefaultSourcesConfig()},
		Embed: Embed{
			ModelFile: "", // build the untrained model
			Model:     embed.DefaultModelConfig(),
			Runtime:   embed.EncoderConfig{Sessions: 2, IntraOpThreads: 1, BatchSize: 64},
		},
		Index: Index{Config: index.DefaultConfig(), Lexical: index.DefaultLexicalConfig()},
		Engine: engine.Config{Candidates: 100, RankTimeout: 100 * time.Millisecond,
			RecentDecay: 0.8, MaxRecent: 20, QueryCacheSize: 10000, SeedCheck: time.Second, CounterCache: 5 * time.Second, Retrieval: engine.DefaultRetrievalConfig(),
			Live: engine.DefaultLiveConfig(), Recommend: engine.DefaultRecommendConfig()},
		Rank: Rank{Config: rank.DefaultConfig(), Runtime: rank.ScorerConfig{Sessions: 2, IntraOpThreads: 1}},
		Rules: rules.Config{
			ReloadEvery: 2 * time.Second,
			Filters: []rules.FilterRule{
				{Name: "available", Expr: "item.available"},
				{Name: "age-rating", Expr: "user.age == 0 || item.age_rating <= user.age"},
				{Name: "no-heavy-metal-for-young-children", Expr: `!(user.age > 0 && user.age < 7 && item.category == "heavy-metal")`},
			},
			Business: []rules.BusinessRule{
				{Name: "fresh-items", When: "item.age_days < 30", Action: "boost", Amount: 0.05},
				{Name: "brand-diversity", Action: "cap", By: "brand", Max: 3},
			},
		},
		Redis: rank.RedisConfig{Mode: rank.RedisSingle, Addrs: []string{}, DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond},
		Kafka: Kafka{
			Config: eventlog.Config{
				Brokers: []string{}, Topic: "recsys.events", ClientID: "recsys", ProduceTimeout: 5 * time.Second, SpoolAfter: 500 * time.Millisecond,
				DeadLetterTopic: "recsys.events.dlq",
				Spool:           eventlog.SpoolConfig{Dir: "var/spool", MaxBytes: 1 << 30, SegmentBytes: 64 << 20, RetryAfter: 5 * time.Second},
			},
			ItemsTopic: "recsys.items",
			Counters: counters.Config{Group: "recsys-counters", KeyPrefix: "recsys:rt", DedupeWindow: 10 * time.Minute,
				LateWindow: 24 * time.Hour, HalfLife: 72 * time.Hour, HistoryLength: 50, HistoryTTL: 30 * 24 * time.Hour, BatchWait: 50 * time.Millisecond},
		},
		Embedded: Embedded{
			Kafka:     eventlog.BrokerConfig{DataDir: "var/kafka", Addr: "127.0.0.1:0"},
			RedisAddr: "127.0.0.1:0",
		},
		ONNXRuntime: ONNXRuntime{Library: ".deps/libonnxruntime.so.1"},
	}
}
