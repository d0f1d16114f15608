package rank

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recsys-dev/recsys/internal/redisd"
	"github.com/recsys-dev/recsys/internal/tlsfiles/tlstest"
)

func freeTestPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tlsRedis starts a real redis-server that serves TLS with a test CA and
// has an ACL user, and hands out clients that reach it only through TLS
// as that user (the password from the environment, as in production).
func tlsRedis(t *testing.T) clientFactory {
	ca, cert, key := tlstest.CA(t)
	tlsPort := freeTestPort(t)
	const user, password = "recsys", "a-long-acl-password-0123456789"
	t.Setenv(EnvRedisPassword, password)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := redisd.ExecOn(ctx, freeTestPort(t),
		"--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", ca, "--tls-auth-clients", "no",
		"--user", user, "on", ">"+password, "~*", "&*", "+@all")
	if errors.Is(err, redisd.ErrNoRedisServer) {
		t.Skip("skipping the TLS run: redis-server not installed (apt-get install redis-server)")
	}
	if err != nil {
		t.Fatalf("exec redis-server with TLS: %v", err)
	}
	t.Cleanup(p.Close)
	cfg := RedisConfig{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)), Username: user,
		TLS: RedisTLS{Enabled: true, CAFile: ca}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return func(t testing.TB) redis.UniversalClient {
		c, err := NewRedisClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if who, err := c.Do(context.Background(), "ACL", "WHOAMI").Text(); err != nil || who != user {
			t.Fatalf("ACL WHOAMI = %q, %v; want %s", who, err, user)
		}
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// TestStore_RedisTLS runs the feature store's contract over TLS as an ACL
// user, after checking that the TLS port refuses a client that does not
// trust the CA and one with a wrong password.
func TestStore_RedisTLS(t *testing.T) {
	factory := tlsRedis(t)
	probe := factory(t) // starts it, checks WHOAMI
	addr := probe.(*redis.Client).Options().Addr
	ctx := context.Background()

	untrusting, err := NewRedisClient(RedisConfig{Addr: addr, Username: "recsys", TLS: RedisTLS{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer untrusting.Close()
	if err := untrusting.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA: %v, want a certificate error", err)
	}
	t.Setenv(EnvRedisPassword, "wrong")
	ca := probe.(*redis.Client).Options().TLSConfig
	wrong := redis.NewClient(&redis.Options{Addr: addr, Username: "recsys", Password: "wrong", TLSConfig: ca})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("a wrong password: %v, want WRONGPASS", err)
	}
	t.Setenv(EnvRedisPassword, "a-long-acl-password-0123456789")
	testStoreContract(t, factory)
}

func TestRedisTLS_Validate(t *testing.T) {
	for _, tt := range []struct {
		tls  RedisTLS
		want string
	}{
		{RedisTLS{Enabled: true, CAFile: "/nonexistent/ca.pem"}, "tls.ca_file"},
		{RedisTLS{Enabled: true, CertFile: "c.pem"}, "set both or neither"},
		{RedisTLS{CAFile: "ca.pem"}, "tls.enabled is false"},
	} {
		err := RedisConfig{Addr: "h:1", TLS: tt.tls}.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.tls, err, tt.want)
		}
	}
}
