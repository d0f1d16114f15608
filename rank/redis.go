package rank

import (
	"errors"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvRedisPassword names the environment variable holding the Redis
// password; secrets never live in the YAML file.
const EnvRedisPassword = "RECSYS_REDIS_PASSWORD"

// RedisConfig is how to reach the feature store's Redis.
type RedisConfig struct {
	Addr string `yaml:"addr"`
	DB   int    `yaml:"db"`
	// Zero timeouts and pool size take go-redis's defaults.
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	PoolSize     int           `yaml:"pool_size"`
}

// Validate reports every problem, each naming its key.
func (c RedisConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr: must not be empty"))
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
	return errors.Join(errs...)
}

// NewRedisClient builds a client from cfg and the password in
// RECSYS_REDIS_PASSWORD. It does not connect; call Store.Ping to check.
func NewRedisClient(cfg RedisConfig) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         cfg.Addr,
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
	})
}
