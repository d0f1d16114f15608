package rank

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recsys-dev/recsys/internal/tlsfiles"
)

// EnvRedisPassword names the environment variable holding the Redis
// password; secrets never live in the YAML file.
const EnvRedisPassword = "RECSYS_REDIS_PASSWORD"

// Redis deployment modes.
const (
	RedisSingle   = "single"
	RedisCluster  = "cluster"
	RedisSentinel = "sentinel"
)

// RedisConfig is how to reach the feature store's Redis: one server, a
// Redis Cluster (Addrs are seed nodes) or a Sentinel-managed primary
// (Addrs are the sentinels, MasterName the primary's name).
type RedisConfig struct {
	Mode string `yaml:"mode"`
	Addr string `yaml:"addr"`
	// Addrs are the seed nodes of a cluster or the sentinels; a single
	// server uses Addr.
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
	// Username is the ACL user; the password is read from
	// RECSYS_REDIS_PASSWORD, never from the file.
	Username string `yaml:"username"`
	DB       int    `yaml:"db"`
	// Zero timeouts and pool size take go-redis's defaults.
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	PoolSize     int           `yaml:"pool_size"`
	// TLS encrypts the connections (Redis 6+ tls-port, managed Redis).
	TLS RedisTLS `yaml:"tls"`
}

// RedisTLS is the client side of Redis over TLS.
type RedisTLS = tlsfiles.Config

// Validate reports every problem, each naming its key.
func (c RedisConfig) Validate() error {
	var errs []error
	switch c.Mode {
	case "", RedisSingle:
		if c.Addr == "" {
			errs = append(errs, errors.New("addr: must not be empty"))
		}
		if len(c.Addrs) > 0 {
			errs = append(errs, errors.New("addrs: only for mode cluster or sentinel; a single server uses addr"))
		}
	case RedisCluster:
		if len(c.Addrs) == 0 && c.Addr == "" {
			errs = append(errs, errors.New("addrs: a cluster needs at least one seed node"))
		}
		if c.DB != 0 {
			errs = append(errs, errors.New("db: a Redis Cluster has only database 0"))
		}
	case RedisSentinel:
		if len(c.Addrs) == 0 {
			errs = append(errs, errors.New("addrs: sentinel mode needs the sentinels' addresses"))
		}
		if c.MasterName == "" {
			errs = append(errs, errors.New("master_name: sentinel mode needs the primary's name"))
		}
	default:
		errs = append(errs, fmt.Errorf("mode: must be single, cluster or sentinel, got %q", c.Mode))
	}
	if c.MasterName != "" && c.Mode != RedisSentinel {
		errs = append(errs, errors.New("master_name: only for mode sentinel"))
	}
	if c.DB < 0 {
		errs = append(errs, errors.New("db: must be >= 0"))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("dial_timeout: must be >= 0"))
	}
	// go-redis reads -1 as "no timeout" and -2 as "leave the deadline
	// alone"; neither is wanted on a request path, so only >= 0 passes.
	if c.ReadTimeout < 0 {
		errs = append(errs, errors.New("read_timeout: must be >= 0"))
	}
	if c.WriteTimeout < 0 {
		errs = append(errs, errors.New("write_timeout: must be >= 0"))
	}
	if c.PoolSize < 0 {
		errs = append(errs, errors.New("pool_size: must be >= 0"))
	}
	if _, err := c.TLS.TLS(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// NewRedisClient builds a client for cfg's mode with the password in
// RECSYS_REDIS_PASSWORD: a *redis.Client, *redis.ClusterClient or a
// failover client. It does not connect; call Store.Ping to check.
func NewRedisClient(cfg RedisConfig) (redis.UniversalClient, error) {
	tc, err := cfg.TLS.TLS()
	if err != nil {
		return nil, fmt.Errorf("redis.%w", err)
	}
	addrs := cfg.Addrs
	if len(addrs) == 0 && cfg.Addr != "" {
		addrs = []string{cfg.Addr}
	}
	opt := &redis.UniversalOptions{
		Addrs:        addrs,
		MasterName:   cfg.MasterName,
		Username:     cfg.Username,
		DB:           cfg.DB,
		Password:     os.Getenv(EnvRedisPassword),
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		PoolSize:     cfg.PoolSize,
		// CLIENT SETINFO is a round trip per connection that only labels
		// the client in CLIENT LIST; the embedded server does not know it.
		DisableIdentity: true,
		// Without it go-redis ignores context deadlines once a command is
		// on the wire, and a slow Redis holds a request for read_timeout
		// instead of rank.fetch_timeout.
		ContextTimeoutEnabled: true,
		TLSConfig:             tc,
	}
	switch cfg.Mode {
	case RedisCluster:
		return redis.NewClusterClient(opt.Cluster()), nil
	case RedisSentinel:
		return redis.NewFailoverClient(opt.Failover()), nil
	}
	return redis.NewClient(opt.Simple()), nil
}

// RouteRedisLogs sends go-redis's own log lines (reconnects, pool and
// cluster notices), which it otherwise prints as plain text on stderr,
// to log as warnings, so a JSON log stays JSON. It is process-wide, as
// go-redis's logger is.
func RouteRedisLogs(log *slog.Logger) {
	redis.SetLogger(redisLogger{log.With("component", "redis")})
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}
