package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/recsys-dev/recsys/api"
	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog/itemlog"
	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/feedback/counters"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/internal/redisd"
	"github.com/recsys-dev/recsys/rank"
	"github.com/recsys-dev/recsys/rules"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve [--config FILE]", stdout)
	path := configFlag(fs)
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	log := cfg.Log.Logger(stderr)
	rank.RouteRedisLogs(log)
	applyGC(cfg.Server, os.Getenv, log)
	s, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return s.Run(ctx, ln)
}

var _ api.Engine = (*engine.Engine)(nil)

// Server is the whole serving process, wired from a configuration. Tests
// start it on port 0 exactly as main does.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	Registry *prometheus.Registry
	Engine   *engine.Engine
	API      *api.Server
	// KafkaBrokers and RedisAddr are the addresses in use, embedded or not.
	KafkaBrokers []string
	RedisAddr    string
	// AdminAddr is where the admin API listens ("" when disabled).
	AdminAddr string
	// PprofAddr is where net/http/pprof listens ("" when disabled).
	PprofAddr string
	// rules watches rules.file (nil without one).
	rules *rulesWatch
	// keys are the API keys (none: the API is open).
	keys *api.Keys

	admin    *api.Admin
	adminLn  net.Listener
	reloadMu sync.Mutex // one reload at a time: SIGHUP, poll and admin
	producer *eventlog.Producer
	sink     *eventlog.Sink
	// items is the items topic (nil with kafka.items_topic empty).
	items   *itemlog.Log
	closers []func()
}

// Open starts the dependencies (embedded ones when no address is
// configured), loads the current bundle and builds the HTTP server.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: log, Registry: prometheus.NewRegistry()}
	// s, not the result: a failed Open returns nil, and what it started
	// must still be stopped.
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge())
	log.Info("starting", "version", readBuildInfo().String(), "config_addr", cfg.Server.Addr)
	if s.keys, err = api.LoadKeys(cfg.Server.Auth, os.Getenv); err != nil {
		return nil, err
	}
	warning, err := api.CheckExposure(cfg.Server, s.keys)
	if err != nil {
		return nil, err
	}
	if warning != "" {
		log.Warn(warning)
	}
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		return nil, err
	}
	set, err := rules.Compile(cfg.Rules)
	if err != nil {
		return nil, err
	}

	s.KafkaBrokers = cfg.Kafka.Brokers
	if len(s.KafkaBrokers) == 0 {
		b, err := eventlog.StartBroker(cfg.Embedded.Kafka, log)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { b.Close() })
		s.KafkaBrokers = b.Addrs()
		log.Info("kafka.brokers is empty: started the embedded Kafka-protocol broker", "addrs", s.KafkaBrokers, "data_dir", cfg.Embedded.Kafka.DataDir)
	}
	kcfg := cfg.Kafka.Config
	kcfg.Brokers = s.KafkaBrokers
	if s.producer, err = eventlog.NewProducer(kcfg, log, s.Registry); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.producer.Close() })
	if err := s.openSink(ctx); err != nil {
		return nil, err
	}

	rcfg := cfg.Redis
	if rcfg.Addr == "" && (rcfg.Mode == "" || rcfg.Mode == rank.RedisSingle) {
		r, err := redisd.Start(cfg.Embedded.RedisAddr)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, r.Close)
		// The counters' scripts run in Go here: the embedded server's Lua
		// interpreter cost a quarter of the CPU under load.
		for src, fn := range counters.NativeScripts() {
			r.Native(src, fn)
		}
		rcfg.Addr = r.Addr()
		log.Info("redis.addr is empty: started the in-process Redis-protocol server", "addr", rcfg.Addr)
	}
	s.RedisAddr = rcfg.Addr
	client, err := rank.NewRedisClient(rcfg)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { client.Close() })
	store, err := rank.NewStore(client, cfg.Rank.Config, s.Registry)
	if err != nil {
		return nil, err
	}
	ccfg := cfg.Kafka.Counters.WithDefaults()
	store.UseRealtime(ccfg.KeyPrefix, ccfg.HalfLife)
	deps := engine.Deps{
		Realtime: store, Impressions: s.sink, Rules: set,
		Load:   loadOptions(cfg),
		Logger: log, Registerer: s.Registry,
	}
	if cfg.Rank.ItemFeatures == rank.ItemFeaturesStore {
		deps.Features, deps.Seeder = store, store
	}
	if err := s.openItems(ctx, kcfg); err != nil {
		return nil, err
	}
	if s.items != nil {
		deps.Items = s.items
	}
	s.Engine, err = engine.New(cfg.Engine, deps)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Engine.Close)
	// A rule that errors at run time drops the item (fail closed); count
	// it, across reloads of the rules.
	var retiredErrs atomic.Uint64
	s.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "recsys_rules_runtime_errors_total",
		Help: "Rule evaluations that failed at run time (the item was filtered out or the rule did not fire).",
	}, func() float64 { return float64(retiredErrs.Load() + s.Engine.Rules().RuntimeErrors()) }))
	if cfg.Rules.File != "" {
		if len(cfg.Rules.Filters)+len(cfg.Rules.Business) > 0 {
			log.Warn("rules.file is set: its rules replace the filters and business rules written in the configuration", "file", cfg.Rules.File)
		}
		s.rules = newRulesWatch(cfg.Rules.File, cfg.Rules.ReloadEvery, s.Engine, log, s.Registry)
		s.rules.onSwap = func(old *rules.Set) { retiredErrs.Add(old.RuntimeErrors()) }
		if err := s.rules.load(); err != nil {
			return nil, err
		}
		s.goBackground(s.rules.run)
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	s.goBackground(s.Engine.Run)
	s.goBackground(s.Engine.RunItems)
	if err := s.openPprof(); err != nil {
		return nil, err
	}
	// Started once a bundle is live: only its items are counted, and an
	// event naming another goes to the dead-letter topic.
	updater, err := counters.New(kcfg, ccfg, client, counters.Options{Logger: log, Registerer: s.Registry,
		Known: s.Engine.Has,
		DeadLetters: func(ctx context.Context, dead []eventlog.DeadLetter) error {
			_, err := s.sink.PublishBatch(ctx, nil, dead)
			return err
		}})
	if err != nil {
		return nil, err
	}
	s.goBackground(updater.Run)

	s.API, err = api.New(cfg.Server, api.Deps{
		Engine: s.Engine, Feedback: s.sink, Logger: log,
		Registerer: s.Registry, Gatherer: s.Registry, Keys: s.keys,
		Checks: []api.Check{
			{Name: "bundle", Fn: s.Engine.Ready},
			{Name: "features", Fn: s.Engine.FeaturesReady, Degrades: true},
			{Name: "redis", Fn: func(ctx context.Context) error { return pingRedis(ctx, client) }, Degrades: true},
			{Name: "kafka", Fn: s.producer.Ping, Degrades: s.sink.HasSpool()},
			// A refused rules file leaves the previous rules serving.
			{Name: "rules", Fn: s.rulesReady, Degrades: true},
			// A replica still applying the item changes written before it
			// started would serve sold-out or deleted items: not ready.
			// One that cannot reach the items topic serves what it has.
			{Name: "items", Fn: s.Engine.ItemsReady},
			{Name: "items_topic", Fn: s.Engine.ItemsReachable, Degrades: true},
		},
	})
	if err != nil {
		return nil, err
	}
	if err := s.openAdmin(); err != nil {
		return nil, err
	}
	return s, nil
}

// openAdmin listens on server.admin_addr (when set) so the address is
// known once Open returns; Run serves it.
func (s *Server) openAdmin() error {
	if s.cfg.Server.AdminAddr == "" {
		return nil
	}
	var err error
	s.admin, err = api.NewAdmin(api.AdminDeps{
		Reload: func(ctx context.Context) (string, string, error) {
			before := s.Engine.Current()
			if s.rules != nil {
				_ = s.rules.load() // logged, counted, in /readyz; the bundle reload goes on
			}
			err := s.reload(ctx)
			return before, s.Engine.Current(), err
		},
		Live:   s.Engine.Current,
		Items:  s.itemsAdmin(),
		Logger: s.log,
		Keys:   s.keys,
		// The admin listener's own bounds: slow headers and bodies are cut
		// like the public listener's, idle connections closed.
		ReadTimeout: s.cfg.Server.ReadTimeout, WriteTimeout: s.cfg.Server.WriteTimeout, IdleTimeout: s.cfg.Server.IdleTimeout,
	})
	if err != nil {
		return err
	}
	if s.adminLn, err = net.Listen("tcp", s.cfg.Server.AdminAddr); err != nil {
		return fmt.Errorf("admin listener (server.admin_addr): %w", err)
	}
	s.AdminAddr = s.adminLn.Addr().String()
	ln := s.adminLn
	s.closers = append(s.closers, func() { ln.Close() })
	return nil
}

// openItems opens the items topic (kafka.items_topic) and creates it when
// missing. An unreachable Kafka does not stop the start: the bundle's
// catalog serves, /readyz says the topic is unreachable, and the applier
// catches up when it answers.
func (s *Server) openItems(ctx context.Context, kcfg eventlog.Config) error {
	if s.cfg.Kafka.ItemsTopic == "" {
		s.log.Warn("kafka.items_topic is empty: the live catalog is off, items change only with a rebuild")
		return nil
	}
	l, err := itemlog.Open(kcfg, s.cfg.Kafka.ItemsTopic, s.log)
	if err != nil {
		return err
	}
	s.items = l
	s.closers = append(s.closers, l.Close)
	tctx, cancel := context.WithTimeout(ctx, s.cfg.Kafka.WithDefaults().ProduceTimeout)
	defer cancel()
	if err := l.Ensure(tctx); err != nil {
		s.log.Warn("items topic not created (Kafka unreachable?): the live catalog waits for it", "topic", l.Topic(), "error", err)
	}
	return nil
}

// itemsAdmin is what the admin item routes need (nil: the live catalog
// is off).
func (s *Server) itemsAdmin() *api.ItemsDeps {
	if s.items == nil {
		return nil
	}
	return &api.ItemsDeps{Write: s.items.Write, End: s.items.End, Get: s.Engine.Item, Applied: s.Engine.ItemsOffset}
}

// openPprof serves net/http/pprof on server.pprof_addr (loopback only,
// checked by the config). An address that cannot be bound fails the start,
// as the other listeners do.
func (s *Server) openPprof() error {
	if s.cfg.Server.PprofAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Server.PprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listener (server.pprof_addr): %w", err)
	}
	s.PprofAddr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.log.Info("pprof", "addr", s.PprofAddr)
	s.goBackground(func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("pprof listener: %w", err)
		}
		return nil
	})
	return nil
}

// openSink puts the spool (when configured) behind the producer and starts
// the drainer that delivers it when Kafka is reachable.
func (s *Server) openSink(ctx context.Context) error {
	var spool *eventlog.Spool
	if s.cfg.Kafka.Spool.Dir != "" {
		var err error
		if spool, err = eventlog.OpenSpool(s.cfg.Kafka.Spool, s.log); err != nil {
			return err
		}
		s.closers = append(s.closers, func() { spool.Close() })
	}
	var err error
	if s.sink, err = eventlog.NewSink(s.producer, spool, s.log, s.Registry); err != nil {
		return err
	}
	// Without a spool Kafka is a hard dependency: wait for it as long as
	// a produce would. With one, an unreachable Kafka is an outage to ride
	// out, not a reason to delay the start.
	wait := s.cfg.Kafka.ProduceTimeout + 5*time.Second
	if spool != nil {
		wait = 2 * s.cfg.Kafka.WithDefaults().SpoolAfter
	}
	tctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := s.sink.EnsureTopics(tctx); err != nil {
		if spool == nil || errors.Is(err, eventlog.ErrNotDurable) {
			return err
		}
		// Accepting into the spool is the point of having one: start, and
		// let the drainer create the topics when Kafka is back.
		s.log.Warn("kafka unreachable at start: accepting feedback into the spool", "error", err)
	}
	s.goBackground(s.sink.Run)
	return nil
}

// goBackground runs fn until Close, which cancels it and waits for it.
// rulesReady reports a refused rules file (nil without one).
func (s *Server) rulesReady(ctx context.Context) error {
	if s.rules == nil {
		return nil
	}
	return s.rules.ready(ctx)
}

func (s *Server) goBackground(fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			s.log.Error("background task stopped", "error", err)
		}
	}()
	s.closers = append(s.closers, func() { cancel(); <-done })
}

func pingRedis(ctx context.Context, c redis.UniversalClient) error { return c.Ping(ctx).Err() }

// reload loads the bundle CURRENT names if it is not the live one. A bundle
// that fails to load is refused and the live one keeps serving.
func (s *Server) reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	v, err := bundle.Current(s.cfg.Bundles.Dir)
	if err != nil {
		if errors.Is(err, bundle.ErrNoBundle) {
			return fmt.Errorf("%w: run `recsys build` first", err)
		}
		return err
	}
	if v == s.Engine.Current() {
		return nil
	}
	return s.Engine.Load(ctx, filepath.Join(s.cfg.Bundles.Dir, v))
}

// Run serves on ln until ctx ends, reloading on SIGHUP and on the poll interval.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if d := s.cfg.Bundles.PollInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	errc := make(chan error, 2)
	go func() { errc <- s.API.Serve(ln) }()
	if s.admin != nil {
		go func() { errc <- s.admin.Serve(s.adminLn) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.admin.Shutdown(sctx)
		}()
		s.log.Info("admin API", "addr", s.AdminAddr, "reload", "POST /admin/reload")
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "bundle", s.Engine.Current())
	for {
		select {
		case <-ctx.Done():
			s.log.Info("shutting down: draining in-flight requests", "grace", "10s")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := s.API.Shutdown(sctx)
			s.log.Info("stopped", "bundle", s.Engine.Current())
			return err
		case err := <-errc:
			return err
		case <-hup:
			s.logReload(ctx, "sighup")
		case <-tick:
			s.logReload(ctx, "poll")
		}
	}
}

func (s *Server) logReload(ctx context.Context, why string) {
	if err := s.reload(ctx); err != nil {
		s.log.Error("bundle refused, the live bundle keeps serving", "trigger", why, "live", s.Engine.Current(), "error", err)
	}
}

// Close stops everything Open started, in reverse order.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// loadOptions are the serving knobs every engine of this binary (serve,
// eval search, train rank --judgments) applies to a bundle at load, so an
// offline figure describes what serve would answer.
func loadOptions(cfg *config.Config) engine.LoadOptions {
	lex := cfg.Index.Lexical.Params()
	return engine.LoadOptions{Encoder: cfg.Embed.Runtime, Scorer: cfg.Rank.Runtime,
		Search:  &engine.SearchOptions{EfSearch: cfg.Index.EfSearch, ExactBelow: cfg.Index.ExactBelow},
		Lexical: &lex, ALSEfSearch: cfg.Engine.Recommend.ALSEfSearch}
}
