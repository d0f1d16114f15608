package eventlog

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Defaults applied by NewProducer and ReadTopic to zero fields of Config.
const (
	DefaultTopic          = "recsys.events"
	DefaultClientID       = "recsys"
	DefaultProduceTimeout = 5 * time.Second
	DefaultSpoolAfter     = 500 * time.Millisecond
)

// Config configures the connection to the event log. The zero value of every
// field except Brokers means "use the default".
type Config struct {
	// Brokers are seed addresses (host:port) of the Kafka cluster or of the
	// embedded broker.
	Brokers []string `yaml:"brokers"`
	// Topic holds every event type; consumers tell them apart by the type
	// field (and the event_type header), which keeps one user's impressions
	// and actions ordered in one partition.
	Topic    string `yaml:"topic"`
	ClientID string `yaml:"client_id"`
	// ProduceTimeout bounds Publish, the delivery of asynchronous records
	// and the flush on Close.
	ProduceTimeout time.Duration `yaml:"produce_timeout"`
	// SpoolAfter is how long an accepted event waits for the broker's
	// acknowledgement before the sink spools it instead (with a spool).
	// It must sit well inside the request deadline, or the request times
	// out before the spool is tried. 0 means the default 500ms.
	SpoolAfter time.Duration `yaml:"spool_after"`
	// Partitions is the partition count EnsureTopic creates the topic with;
	// 0 leaves it to the broker's default. An existing topic is not changed.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor and MinInsyncReplicas are what a topic this service
	// creates gets; 0 means 3 and 2 on a cluster of 3 brokers or more, and
	// the broker count and 1 on a smaller one (the embedded broker).
	ReplicationFactor int `yaml:"replication_factor"`
	MinInsyncReplicas int `yaml:"min_insync_replicas"`
	// Retention of a created topic's records; 0 leaves the broker's.
	Retention time.Duration `yaml:"retention"`
	// RequireDurableTopic refuses to start when a topic (new or existing)
	// would let an acknowledged event be lost with one broker:
	// replication below 2, min.insync.replicas below 2, or unclean leader
	// election on. Without it the service starts and warns.
	RequireDurableTopic bool `yaml:"require_durable_topic"`
	// DeadLetterTopic receives events refused after acceptance (invalid
	// members of a batch, invalid records met on replay), with the reason.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// Spool holds accepted events on disk while Kafka is unreachable.
	Spool SpoolConfig `yaml:"spool"`
	// Compression is the codec of produced batches: none, snappy, lz4,
	// zstd or gzip; empty means snappy. The embedded broker keeps snappy
	// too: it writes every batch to its segment files and reads it back
	// for every fetch, and an impression's features compress about 3x,
	// so none cost more copying than the codec saved (measured).
	Compression string `yaml:"compression"`
	// TLS and SASL secure the connections to a managed cluster.
	TLS  TLSConfig  `yaml:"tls"`
	SASL SASLConfig `yaml:"sasl"`
}

// Validate reports every invalid key, naming it.
func (c Config) Validate() error {
	errs := c.securityProblems()
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: must list at least one host:port"))
	}
	for i, b := range c.Brokers {
		if err := checkHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("brokers[%d]: %w", i, err))
		}
	}
	if c.Topic != "" {
		if err := checkTopicName(c.Topic); err != nil {
			errs = append(errs, fmt.Errorf("topic: %w", err))
		}
	}
	if c.DeadLetterTopic != "" {
		if err := checkTopicName(c.DeadLetterTopic); err != nil {
			errs = append(errs, fmt.Errorf("dead_letter_topic: %w", err))
		}
		if c.DeadLetterTopic == c.Topic || (c.Topic == "" && c.DeadLetterTopic == DefaultTopic) {
			errs = append(errs, errors.New("dead_letter_topic: must differ from topic"))
		}
	}
	if err := c.Spool.Validate(); err != nil {
		errs = append(errs, prefixErrs("spool.", err))
	}
	if c.ProduceTimeout < 0 || (c.ProduceTimeout > 0 && c.ProduceTimeout < time.Second) {
		// The Kafka client refuses record timeouts under a second.
		errs = append(errs, errors.New("produce_timeout: must be at least 1s (0 means the default 5s)"))
	}
	if c.SpoolAfter < 0 || (c.ProduceTimeout > 0 && c.SpoolAfter > c.ProduceTimeout) {
		errs = append(errs, errors.New("spool_after: must be in [0, produce_timeout] (0 means the default 500ms)"))
	}
	if c.ReplicationFactor < 0 || c.ReplicationFactor > 32 {
		errs = append(errs, errors.New("replication_factor: must be in [0, 32] (0 means 3, or the broker count when smaller)"))
	}
	if c.MinInsyncReplicas < 0 || (c.ReplicationFactor > 0 && c.MinInsyncReplicas > c.ReplicationFactor) {
		errs = append(errs, errors.New("min_insync_replicas: must be in [0, replication_factor] (0 means 2 at replication 3 or more, else 1)"))
	}
	if c.Retention < 0 || (c.Retention > 0 && c.Retention < time.Minute) {
		errs = append(errs, errors.New("retention: must be 0 (the broker's) or at least 1m"))
	}
	if _, err := c.codec(); err != nil {
		errs = append(errs, err)
	}
	if c.Partitions < 0 || c.Partitions > 10000 {
		errs = append(errs, errors.New("partitions: must be in [0, 10000] (0 means the broker's default)"))
	}
	return errors.Join(errs...)
}

func (c Config) WithDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultProduceTimeout
	}
	if c.SpoolAfter == 0 {
		c.SpoolAfter = min(DefaultSpoolAfter, c.ProduceTimeout)
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topic + ".dlq"
	}
	return c
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port: %w", err)
	}
	if host == "" {
		return errors.New("host must not be empty")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return errors.New("port must be in [1, 65535]")
	}
	return nil
}

// checkTopicName applies Kafka's own rules so that a typo fails at startup
// rather than as a broker error on the first request.
// CheckTopicName reports why t cannot name a Kafka topic, or nil.
func CheckTopicName(t string) error { return checkTopicName(t) }

func checkTopicName(t string) error {
	if t == "." || t == ".." {
		return errors.New(`must not be "." or ".."`)
	}
	if len(t) > 249 {
		return errors.New("longer than 249 characters")
	}
	for _, r := range t {
		ok := r == '.' || r == '_' || r == '-' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("invalid character %q (allowed: letters, digits, '.', '_', '-')", r)
		}
	}
	return nil
}

// prefixErrs puts prefix in front of every error joined in err, so nested
// keys are named in full (spool.max_bytes).
func prefixErrs(prefix string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			errs = append(errs, fmt.Errorf("%s%w", prefix, e))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s%w", prefix, err)
}
