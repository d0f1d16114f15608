package eventlog

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/recsys-dev/recsys/internal/tlsfiles"
)

// EnvKafkaPassword holds the SASL password; secrets never live in the
// YAML file.
const EnvKafkaPassword = "RECSYS_KAFKA_PASSWORD"

// SASL mechanisms franz-go's own sasl packages provide.
const (
	SASLPlain     = "PLAIN"
	SASLScram256  = "SCRAM-SHA-256"
	SASLScram512  = "SCRAM-SHA-512"
	saslMechanism = "sasl.mechanism"
)

var saslMechanisms = []string{SASLPlain, SASLScram256, SASLScram512}

// SASLConfig authenticates the Kafka connections; an empty Mechanism
// means none.
type SASLConfig struct {
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user; its password comes from
	// RECSYS_KAFKA_PASSWORD only.
	Username string `yaml:"username"`
}

// securityProblems checks the TLS and SASL keys.
func (c Config) securityProblems() []error {
	var errs []error
	if _, err := c.TLS.TLS(); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.SASL.Mechanism == "":
		if c.SASL.Username != "" {
			errs = append(errs, errors.New("sasl.username: set without sasl.mechanism"))
		}
	case !slices.Contains(saslMechanisms, c.SASL.Mechanism):
		errs = append(errs, fmt.Errorf("%s: must be one of %v or empty, got %q", saslMechanism, saslMechanisms, c.SASL.Mechanism))
	case c.SASL.Username == "":
		errs = append(errs, errors.New("sasl.username: required with sasl.mechanism"))
	}
	return errs
}

// ClientOpts are the options every Kafka client of the service starts
// with: the seed brokers, TLS and SASL, then more.
func (c Config) ClientOpts(more ...kgo.Opt) ([]kgo.Opt, error) {
	codec, err := c.codec()
	if err != nil {
		return nil, fmt.Errorf("kafka.%w", err)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ProducerBatchCompression(codec)}
	tc, err := c.TLS.TLS()
	if err != nil {
		return nil, fmt.Errorf("kafka.%w", err)
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := c.SASL.Mechanism; m != "" {
		pass := os.Getenv(EnvKafkaPassword)
		if pass == "" {
			return nil, fmt.Errorf("kafka.sasl: %s needs the password in %s", m, EnvKafkaPassword)
		}
		switch m {
		case SASLPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.Username, Pass: pass}.AsMechanism()))
		case SASLScram256:
			opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: pass}.AsSha256Mechanism()))
		case SASLScram512:
			opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: pass}.AsSha512Mechanism()))
		}
	}
	return append(opts, more...), nil
}

// Compression codecs (kafka.compression).
const (
	CompressionNone   = "none"
	CompressionSnappy = "snappy"
)

// codec is the producer's batch codec for c.Compression; empty is snappy.
func (c Config) codec() (kgo.CompressionCodec, error) {
	switch c.Compression {
	case "", CompressionSnappy:
		return kgo.SnappyCompression(), nil
	case CompressionNone:
		return kgo.NoCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression: must be none, snappy, lz4, zstd or gzip (empty: snappy), got %q", c.Compression)
}

// TLSConfig is the client's TLS, for the package's own tests and for
// callers that build a kafka client outside ClientOpts.
type TLSConfig = tlsfiles.Config

// NewClient is a Kafka client with ClientOpts(more...).
func (c Config) NewClient(more ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.ClientOpts(more...)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new kafka client: %w", err)
	}
	return cl, nil
}
