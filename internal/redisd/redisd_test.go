package redisd

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// roundTrip writes and reads a key through a real client, proving the server
// speaks RESP well enough for go-redis (including its HELLO handshake).
func roundTrip(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	if err := c.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := c.Get(ctx, "k").Result()
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if got != "v1" {
		t.Fatalf("GET k = %q, want v1", got)
	}
}

func assertClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections after Close", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStart(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr bool
	}{
		{name: "port zero", addr: "127.0.0.1:0"},
		{name: "empty means any loopback port", addr: ""},
		{name: "all interfaces refused", addr: "0.0.0.0:0", wantErr: true},
		{name: "missing port refused", addr: "127.0.0.1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(tt.addr)
			if tt.wantErr {
				if err == nil {
					s.Close()
					t.Fatalf("Start(%q) succeeded, want error", tt.addr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start(%q): %v", tt.addr, err)
			}
			host, port, err := net.SplitHostPort(s.Addr())
			if err != nil || host != "127.0.0.1" || port == "0" {
				t.Fatalf("Addr() = %q, want 127.0.0.1 with a real port", s.Addr())
			}
			roundTrip(t, s.Addr())
			s.Close()
			assertClosed(t, s.Addr())
			s.Close() // second Close must not panic
		})
	}
}

func TestExec(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := Exec(ctx)
	if errors.Is(err, ErrNoRedisServer) {
		t.Skip("skipping: redis-server binary not found (apt-get install redis-server)")
	}
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	t.Run("answers commands", func(t *testing.T) {
		roundTrip(t, p.Addr())
	})
	t.Run("persistence off", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: p.Addr(), DisableIdentity: true})
		defer c.Close()
		for key, want := range map[string]string{"save": "", "appendonly": "no"} {
			got, err := c.ConfigGet(ctx, key).Result()
			if err != nil {
				t.Fatalf("CONFIG GET %s: %v", key, err)
			}
			if got[key] != want {
				t.Errorf("CONFIG GET %s = %q, want %q", key, got[key], want)
			}
		}
	})
	t.Run("close kills the process", func(t *testing.T) {
		p.Close()
		assertClosed(t, p.Addr())
		if p.cmd.ProcessState == nil {
			t.Fatal("process was not reaped")
		}
		p.Close()
	})
}

func TestExec_cancelledContext(t *testing.T) {
	if _, err := binaryPath(); err != nil {
		t.Skip("skipping: redis-server binary not found")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := Exec(ctx)
	if err == nil {
		p.Close()
		t.Fatal("Exec with a cancelled context succeeded, want error")
	}
}

func TestExecCluster(t *testing.T) {
	c, err := ExecCluster(context.Background(), 3)
	if err != nil {
		if errors.Is(err, ErrNoRedisServer) && os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Addrs()) != 3 {
		t.Fatalf("addrs %v", c.Addrs())
	}
}

// TestExec_PortTakenByAnotherServer: a redis-server whose port another
// server already holds is not mistaken for ready because the other one
// answers PING.
func TestExec_PortTakenByAnotherServer(t *testing.T) {
	ctx := context.Background()
	first, err := Exec(ctx)
	if errors.Is(err, ErrNoRedisServer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	bin, err := binaryPath()
	if err != nil {
		t.Fatal(err)
	}
	p, err := execPort(ctx, bin, first.Port(), nil)
	if err == nil {
		p.Close()
		t.Fatal("a second redis-server on a taken port reported ready")
	}
	if !strings.Contains(err.Error(), "another server") && !strings.Contains(err.Error(), "exited") {
		t.Errorf("error %v, want the port named as another server's", err)
	}
}
