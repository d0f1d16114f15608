package eventlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/recsys-dev/recsys/internal/tlsfiles/tlstest"
)

// TestProducer_TLSAndSASL publishes and reads back events through a kfake
// cluster that serves only TLS and only to a SCRAM-SHA-512 user, with
// the password from the environment; a client that does not trust the CA,
// or has the wrong password, gets nothing through.
func TestProducer_TLSAndSASL(t *testing.T) {
	ca, cert, key := tlstest.CA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(tlstest.ServerConfig(t, cert, key)),
		kfake.EnableSASL(), kfake.Superuser(SASLScram512, "recsys", "a-long-sasl-password"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv(EnvKafkaPassword, "a-long-sasl-password")
	cfg := Config{Brokers: c.ListenAddrs(), Topic: "secure.events", ClientID: "secure-test", ProduceTimeout: 5 * time.Second, Partitions: 1,
		TLS: TLSConfig{Enabled: true, CAFile: ca}, SASL: SASLConfig{Mechanism: SASLScram512, Username: "recsys"}}
	p := newTestProducer(t, cfg, nil)
	evs := testEvents(5)
	for _, ev := range evs {
		if err := p.Publish(context.Background(), ev); err != nil {
			t.Fatalf("publish over TLS and SASL: %v", err)
		}
	}
	got, _, _ := readAll(t, cfg)
	if len(got) != len(evs) {
		t.Fatalf("read back %d events, want %d", len(got), len(evs))
	}

	refused := func(name string, cfg Config) {
		t.Helper()
		p, err := NewProducer(cfg, nil, nil)
		if err != nil {
			return // refused at construction: fine
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := p.Publish(ctx, testEvents(1)[0]); err == nil {
			t.Fatalf("%s: an event went through", name)
		}
	}
	untrusting := cfg
	untrusting.TLS.CAFile = ""
	refused("a client that does not trust the CA", untrusting)
	t.Setenv(EnvKafkaPassword, "wrong")
	refused("a wrong password", cfg)
}

func TestConfig_SecurityProblems(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u"}}, `sasl.mechanism: must be one of`},
		{Config{SASL: SASLConfig{Mechanism: SASLPlain}}, "sasl.username: required"},
		{Config{TLS: TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"}}, "tls.ca_file"},
	} {
		tt.cfg.Brokers = []string{"127.0.0.1:9092"}
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
	t.Setenv(EnvKafkaPassword, "")
	if _, err := (Config{Brokers: []string{"h:1"}, SASL: SASLConfig{Mechanism: SASLPlain, Username: "u"}}).ClientOpts(); err == nil ||
		!strings.Contains(err.Error(), EnvKafkaPassword) {
		t.Fatalf("SASL without a password: %v", err)
	}
}
