package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/rules"
)

// defaultRulesReload is how often a rules file is checked when
// rules.reload_every is 0.
const defaultRulesReload = 2 * time.Second

// rulesWatch keeps the engine's rules equal to the rules file: a changed
// file goes live once it parses, validates and compiles; a bad one is
// refused, logged, counted and shown in /readyz, and the rules already
// live keep serving.
type rulesWatch struct {
	path  string
	every time.Duration
	eng   *engine.Engine
	log   *slog.Logger

	mu      sync.Mutex // one load at a time
	version string     // the live file's content hash
	lastErr atomic.Pointer[error]
	reloads *prometheus.CounterVec
	// onSwap sees the rules a load replaced.
	onSwap func(old *rules.Set)
	read   func(string) ([]byte, error) // os.ReadFile; a test's writer mid-write
}

func newRulesWatch(path string, every time.Duration, eng *engine.Engine, log *slog.Logger, reg prometheus.Registerer) *rulesWatch {
	if every <= 0 {
		every = defaultRulesReload
	}
	w := &rulesWatch{path: path, every: every, eng: eng, log: log, read: os.ReadFile,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_rules_reloads_total",
			Help: "Rules file loads by result: loaded (now live) or refused (invalid or unreadable; the live rules kept serving).",
		}, []string{"result"})}
	reg.MustRegister(w.reloads)
	return w
}

// settle is how long a changed rules file must stay unchanged to be read.
const settle = 50 * time.Millisecond

// load makes the file's rules live if it changed. An error means it was
// refused and the live rules are unchanged.
func (w *rulesWatch) load() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := w.read(w.path)
	if err == nil {
		sum := sha256.Sum256(data)
		version := "file:" + hex.EncodeToString(sum[:6])
		if version == w.version {
			return nil
		}
		// A file being written (an editor or os.WriteFile truncates, then
		// writes) can be read empty or cut short, and a prefix of a rules
		// file may well parse: a change goes live only once a second read
		// a moment later finds the same bytes; else the next check decides.
		time.Sleep(settle)
		if again, rerr := w.read(w.path); rerr != nil || sha256.Sum256(again) != sum {
			return nil
		}
		var set *rules.Set
		if _, set, err = rules.ParseFile(data); err == nil {
			old := w.eng.Rules()
			w.eng.SetRules(set, version)
			if w.onSwap != nil && old != nil {
				w.onSwap(old)
			}
			w.version = version
			w.lastErr.Store(nil)
			w.reloads.WithLabelValues("loaded").Inc()
			return nil
		}
	}
	err = fmt.Errorf("rules.file %s refused, the live rules (%s) keep serving: %w", w.path, w.eng.RulesVersion(), err)
	if prev := w.lastErr.Load(); prev == nil || (*prev).Error() != err.Error() {
		w.log.Error("rules file refused", "path", w.path, "live", w.eng.RulesVersion(), "error", err)
	}
	w.lastErr.Store(&err)
	w.reloads.WithLabelValues("refused").Inc()
	return err
}

// run checks the file every w.every until ctx ends.
func (w *rulesWatch) run(ctx context.Context) error {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = w.load() // logged, counted and in /readyz
		}
	}
}

// ready is the /readyz check: the file on disk is the one live.
func (w *rulesWatch) ready(context.Context) error {
	if err := w.lastErr.Load(); err != nil {
		return *err
	}
	return nil
}
