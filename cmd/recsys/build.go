package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/recsys-dev/recsys/catalog/itemlog"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/rank"
)

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("build", "build [--config FILE] [--catalog FILE]", stdout)
	path := configFlag(fs)
	catalogPath := fs.String("catalog", "", "catalog to build from (JSONL or CSV); default: build.catalog")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	if *catalogPath != "" {
		cfg.Build.Catalog = *catalogPath
	}
	log := cfg.Log.Logger(stderr)
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		return err
	}
	opts, err := buildOptions(cfg)
	if err != nil {
		return err
	}
	opts.Progress, opts.Logger = stdout, log
	items, events, closeLogs, err := openBuildLogs(cfg, log)
	if err != nil {
		return err
	}
	defer closeLogs()
	opts.Items, opts.Events = items, events
	if cfg.Redis.Addr != "" {
		// A real store: write features now, so servers find them at load.
		client, err := rank.NewRedisClient(cfg.Redis)
		if err != nil {
			return err
		}
		defer client.Close()
		store, err := rank.NewStore(client, cfg.Rank.Config, nil)
		if err != nil {
			return err
		}
		opts.Features = store
	}
	m, err := offline.Build(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published bundle %s (%d items, dim %d)\n", m.Version, m.Items, m.Dim)
	return nil
}

// buildOptions maps the configuration onto one build.
func buildOptions(cfg *config.Config) (offline.BuildOptions, error) {
	rules, err := rulesYAML(cfg)
	if err != nil {
		return offline.BuildOptions{}, err
	}
	return offline.BuildOptions{
		Rules:   rules,
		Catalog: cfg.Build.Catalog, BundlesDir: cfg.Bundles.Dir, Keep: cfg.Bundles.Keep,
		Model: cfg.Embed.Model, ModelFile: cfg.Embed.ModelFile, Encoder: cfg.Embed.Runtime, Index: cfg.Index.Config, Lexical: cfg.Index.Lexical, Rank: cfg.Rank.Config,
		Ranker: cfg.Build.Ranker, Sources: cfg.Build.Sources,
	}, nil
}

// rulesYAML is the rule set a build stores in its bundle: the rules file
// when rules.file is set, else the configuration's rules section written
// as a rules file.
func rulesYAML(cfg *config.Config) ([]byte, error) {
	if cfg.Rules.File != "" {
		b, err := os.ReadFile(cfg.Rules.File)
		if err != nil {
			return nil, fmt.Errorf("rules.file: %w", err)
		}
		return b, nil
	}
	c := cfg.Rules
	c.File, c.ReloadEvery = "", 0
	return yaml.Marshal(c)
}

// openBuildLogs opens the logs a build reads: the items topic it folds
// in (nil with kafka.items_topic empty) and the events topic the
// recommendation sources are trained from. With kafka.brokers empty they
// are the embedded broker's: the running serve's broker when serve holds
// it, else one started for the build.
func openBuildLogs(cfg *config.Config, log *slog.Logger) (offline.ItemChanges, offline.Events, func(), error) {
	kcfg := cfg.Kafka.Config
	stop := func() {}
	if len(kcfg.Brokers) == 0 {
		addrs, closeFn, err := eventlog.Embedded(cfg.Embedded.Kafka, log)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("kafka: %w", err)
		}
		kcfg.Brokers, stop = addrs, closeFn
	}
	events := topicEvents{cfg: kcfg, log: log}
	if cfg.Kafka.ItemsTopic == "" {
		return nil, events, stop, nil
	}
	l, err := itemlog.Open(kcfg, cfg.Kafka.ItemsTopic, log)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return l, events, func() { l.Close(); stop() }, nil
}

// topicEvents replays the whole events topic for a build; a topic that
// does not exist yet holds no events.
type topicEvents struct {
	cfg eventlog.Config
	log *slog.Logger
}

func (t topicEvents) Replay(ctx context.Context, fn func(feedback.Event) error) error {
	_, err := eventlog.Replay(ctx, t.cfg, eventlog.Range{}, t.log, nil, func(e feedback.Event, _ *kgo.Record) error { return fn(e) })
	if errors.Is(err, eventlog.ErrUnknownTopic) {
		t.log.Info("the events topic does not exist yet: recommendation sources from content and popularity only", "topic", t.cfg.Topic)
		return nil
	}
	return err
}
