package eventlog

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultBrokerAddr lets the operating system pick a free port.
const DefaultBrokerAddr = "127.0.0.1:0"

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// DataDir is where the log and the broker's state are kept so events
	// survive a restart. Empty keeps everything in memory (tests, demos).
	DataDir string `yaml:"data_dir"`
	// Addr is the listen address. The embedded broker is for one machine
	// and has no authentication, so the host must be 127.0.0.1; port 0
	// picks a free port.
	Addr string `yaml:"addr"`
	// SyncWrites fsyncs every produced batch before acknowledging it.
	// Without it an acknowledged event survives a process crash (it is in
	// the page cache) and a clean Close, but not a machine crash.
	SyncWrites bool `yaml:"sync_writes"`
	// Partitions is the partition count of a topic created without one
	// (kafka.partitions 0). Zero means 1: one machine runs one consumer of
	// each group, so more partitions buy no parallelism, only a batch, a
	// log write and a fetch cursor each per produce and fetch. kfake's own
	// default is 10.
	Partitions int `yaml:"partitions"`
}

// partitions is the default partition count the broker is started with.
func (c BrokerConfig) partitions() int {
	if c.Partitions == 0 {
		return 1
	}
	return c.Partitions
}

// Validate reports every invalid key, naming it.
func (c BrokerConfig) Validate() error {
	var errs []error
	if c.Partitions < 0 {
		errs = append(errs, errors.New("partitions: must be >= 0"))
	}
	if c.Addr == "" {
		return errors.Join(errs...)
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("addr: must be 127.0.0.1:port: %w", err))...)
	}
	if host != "127.0.0.1" {
		errs = append(errs, fmt.Errorf("addr: host must be 127.0.0.1, got %q: the embedded broker has no authentication", host))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, errors.New("addr: port must be in [0, 65535]"))
	}
	return errors.Join(errs...)
}

// Broker is an in-process, single-node, Kafka-protocol broker (franz-go's
// kfake) listening on 127.0.0.1. Clients talk to it exactly as to a real
// cluster. Automatic topic creation is off, as on production clusters, so
// the code path that creates the topic is the one production uses.
type Broker struct {
	c      *kfake.Cluster
	unlock func() error
	once   sync.Once
	err    error
}

// StartBroker starts the embedded broker. With a DataDir it reloads the log
// and state written by a previous run, and holds an exclusive lock on the
// directory while it runs, because two brokers writing the same files would
// corrupt them.
func StartBroker(cfg BrokerConfig, logger *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultBrokerAddr
	}
	_, portStr, _ := net.SplitHostPort(cfg.Addr)
	port, _ := strconv.Atoi(portStr)

	opts := []kfake.Opt{
		// One node: Ports sets the broker count to the number of ports,
		// and kfake always listens on 127.0.0.1.
		kfake.Ports(port),
		kfake.ClusterID("recsys-embedded"),
		kfake.DefaultNumPartitions(cfg.partitions()),
		kfake.WithLogger(kfakeLogger{logger.With("component", "kafka-broker")}),
	}
	unlock := func() error { return nil }
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create broker data dir: %w", err)
		}
		var err error
		unlock, err = lockDir(filepath.Join(cfg.DataDir, ".lock"))
		if err != nil {
			return nil, fmt.Errorf("lock broker data dir %s: %w", cfg.DataDir, err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		_ = unlock()
		return nil, fmt.Errorf("start embedded kafka broker: %w", err)
	}
	b := &Broker{c: c, unlock: unlock}
	if cfg.DataDir != "" {
		// Other commands of this machine (build, train) find the running
		// broker here while it holds the directory.
		if err := os.WriteFile(filepath.Join(cfg.DataDir, addrFile), []byte(strings.Join(b.Addrs(), ",")+"\n"), 0o644); err != nil {
			logger.Warn("write the embedded broker's address file", "error", err)
		}
	}
	logger.Info("embedded kafka broker started", "addrs", b.Addrs(), "data_dir", cfg.DataDir)
	return b, nil
}

// addrFile, in the data dir, holds the running embedded broker's
// addresses.
const addrFile = "broker.addr"

// Embedded returns the addresses of the embedded broker of cfg: one
// started here (close stops it) when no other process holds the data dir,
// else the one that process runs (serve), read from its address file.
func Embedded(cfg BrokerConfig, logger *slog.Logger) (addrs []string, closeFn func(), err error) {
	b, err := StartBroker(cfg, logger)
	if err == nil {
		return b.Addrs(), func() { b.Close() }, nil
	}
	if !errors.Is(err, errDirLocked) {
		return nil, nil, err
	}
	raw, rerr := os.ReadFile(filepath.Join(cfg.DataDir, addrFile))
	if rerr != nil {
		return nil, nil, fmt.Errorf("%w; and its address: %w", err, rerr)
	}
	addrs = strings.Split(strings.TrimSpace(string(raw)), ",")
	return addrs, func() {}, nil
}

// Addrs returns the broker's listen addresses, for Config.Brokers.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker, writing its state to DataDir first. It is safe to
// call more than once.
func (b *Broker) Close() error {
	b.once.Do(func() {
		b.c.Close()
		if err := b.unlock(); err != nil {
			b.err = fmt.Errorf("unlock broker data dir: %w", err)
		}
	})
	return b.err
}
