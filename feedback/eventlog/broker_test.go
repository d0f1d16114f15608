package eventlog

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/internal/eventtest"
	"github.com/twmb/franz-go/pkg/kadm"
)

func TestStartBroker_RestartKeepsEvents(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	evs := testEvents(25)

	b1, err := StartBroker(BrokerConfig{DataDir: dir}, nil)
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	cfg := testConfig(b1)
	p1 := newTestProducer(t, cfg, nil)
	for _, ev := range evs[:15] {
		if err := p1.Publish(ctx, ev); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A new broker on the same directory, on a new port.
	b2 := startTestBroker(t, dir)
	cfg.Brokers = b2.Addrs()
	got, _, _ := readAll(t, cfg)
	if len(got) != 15 {
		t.Fatalf("read %d events after restart, want 15", len(got))
	}
	gotByID := byID(got)
	for _, w := range evs[:15] {
		if g, ok := gotByID[w.EventID]; !ok || !eventtest.Equal(g, w) {
			t.Errorf("event %s lost or changed across the restart", w.EventID)
		}
	}

	// The log continues after the restart: new events add to the old ones
	// (and the topic needs no re-creation, though EnsureTopic is harmless).
	p2 := newTestProducer(t, cfg, nil)
	for _, ev := range evs[15:] {
		if err := p2.Publish(ctx, ev); err != nil {
			t.Fatalf("Publish after restart: %v", err)
		}
	}
	got, _, _ = readAll(t, cfg)
	if len(got) != len(evs) {
		t.Fatalf("read %d events, want %d", len(got), len(evs))
	}
}

func TestStartBroker_DataDirLocked(t *testing.T) {
	dir := t.TempDir()
	startTestBroker(t, dir)
	b, err := StartBroker(BrokerConfig{DataDir: dir}, nil)
	if err == nil {
		b.Close()
		t.Fatal("a second broker started on a data dir in use")
	}
	if !errors.Is(err, errDirLocked) {
		t.Fatalf("StartBroker = %v, want errDirLocked", err)
	}
}

func TestStartBroker_Addr(t *testing.T) {
	t.Run("random port on loopback", func(t *testing.T) {
		b := startTestBroker(t, "")
		addrs := b.Addrs()
		if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.1:") || strings.HasSuffix(addrs[0], ":0") {
			t.Fatalf("Addrs = %v, want one 127.0.0.1 address with a real port", addrs)
		}
	})
	t.Run("fixed port", func(t *testing.T) {
		// Find a free port, release it and ask the broker for it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		b, err := StartBroker(BrokerConfig{Addr: addr}, nil)
		if err != nil {
			t.Fatalf("StartBroker(%s): %v", addr, err)
		}
		defer b.Close()
		if got := b.Addrs(); len(got) != 1 || got[0] != addr {
			t.Fatalf("Addrs = %v, want [%s]", got, addr)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if b, err := StartBroker(BrokerConfig{Addr: ln.Addr().String()}, nil); err == nil {
			b.Close()
			t.Fatal("StartBroker on a busy port succeeded")
		}
	})
	t.Run("non-loopback refused", func(t *testing.T) {
		if b, err := StartBroker(BrokerConfig{Addr: "0.0.0.0:0"}, nil); err == nil {
			b.Close()
			t.Fatal("StartBroker listened beyond loopback")
		}
	})
}

func TestBroker_Close(t *testing.T) {
	b, err := StartBroker(BrokerConfig{DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addrs()[0]
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("broker still accepts connections after Close")
	}
}

// A topic created without a partition count gets the broker's default:
// one unless embedded.kafka.partitions says otherwise (kfake's own is 10).
func TestStartBroker_DefaultPartitions(t *testing.T) {
	for _, tt := range []struct {
		cfg  BrokerConfig
		want int
	}{
		{BrokerConfig{Addr: "127.0.0.1:0"}, 1},
		{BrokerConfig{Addr: "127.0.0.1:0", Partitions: 4}, 4},
	} {
		b, err := StartBroker(tt.cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProducer(Config{Brokers: b.Addrs(), Topic: "parts.events"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.EnsureTopic(ctx); err != nil {
			t.Fatal(err)
		}
		td, err := kadm.NewClient(p.cl).ListTopics(ctx, "parts.events")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := len(td["parts.events"].Partitions); got != tt.want {
			t.Errorf("partitions %d with embedded partitions %d, want %d", got, tt.cfg.Partitions, tt.want)
		}
		p.Close()
		_ = b.Close()
	}
}
