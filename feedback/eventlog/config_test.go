package eventlog

import (
	"strings"
	"testing"
	"time"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings; empty means valid
	}{
		{"minimal", Config{Brokers: []string{"127.0.0.1:9092"}}, nil},
		{"full", Config{Brokers: []string{"kafka-1:9092", "kafka-2:9092"}, Topic: "recsys.events-v1_a", ClientID: "api", ProduceTimeout: time.Second, Partitions: 12}, nil},
		{"no brokers", Config{}, []string{"brokers: must list"}},
		{"broker without port", Config{Brokers: []string{"127.0.0.1:9092", "kafka"}}, []string{"brokers[1]: must be host:port"}},
		{"broker port out of range", Config{Brokers: []string{"kafka:70000"}}, []string{"brokers[0]: port"}},
		{"broker empty host", Config{Brokers: []string{":9092"}}, []string{"brokers[0]: host"}},
		{"bad topic char", Config{Brokers: []string{"k:1"}, Topic: "events/v1"}, []string{"topic: invalid character"}},
		{"dot topic", Config{Brokers: []string{"k:1"}, Topic: ".."}, []string{"topic: must not be"}},
		{"long topic", Config{Brokers: []string{"k:1"}, Topic: strings.Repeat("t", 250)}, []string{"topic: longer than 249"}},
		{"negative timeout", Config{Brokers: []string{"k:1"}, ProduceTimeout: -time.Second}, []string{"produce_timeout: must be at least 1s"}},
		{"sub-second timeout", Config{Brokers: []string{"k:1"}, ProduceTimeout: 500 * time.Millisecond}, []string{"produce_timeout: must be at least 1s"}},
		{"negative partitions", Config{Brokers: []string{"k:1"}, Partitions: -1}, []string{"partitions: must be in"}},
		{"every codec", Config{Brokers: []string{"k:1"}, Compression: "zstd"}, nil},
		{"unknown codec", Config{Brokers: []string{"k:1"}, Compression: "brotli"}, []string{"compression: must be none, snappy"}},
		{"every error at once", Config{Topic: "a b", Partitions: -3}, []string{"brokers:", "topic:", "partitions:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestConfig_WithDefaults(t *testing.T) {
	got := Config{Brokers: []string{"k:1"}}.WithDefaults()
	if got.Topic != DefaultTopic || got.ClientID != DefaultClientID || got.ProduceTimeout != DefaultProduceTimeout {
		t.Errorf("defaults not applied: %+v", got)
	}
	kept := Config{Brokers: []string{"k:1"}, Topic: "t", ClientID: "c", ProduceTimeout: time.Second}.WithDefaults()
	if kept.Topic != "t" || kept.ClientID != "c" || kept.ProduceTimeout != time.Second {
		t.Errorf("explicit values overwritten: %+v", kept)
	}
}

func TestBrokerConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     BrokerConfig
		wantErr string
	}{
		{"empty uses defaults", BrokerConfig{}, ""},
		{"port zero", BrokerConfig{Addr: "127.0.0.1:0"}, ""},
		{"fixed port", BrokerConfig{Addr: "127.0.0.1:19092", DataDir: "/tmp/x", SyncWrites: true}, ""},
		{"all interfaces", BrokerConfig{Addr: "0.0.0.0:9092"}, "addr: host must be 127.0.0.1"},
		{"empty host", BrokerConfig{Addr: ":9092"}, "addr: host must be 127.0.0.1"},
		{"no port", BrokerConfig{Addr: "127.0.0.1"}, "addr: must be 127.0.0.1:port"},
		{"bad port", BrokerConfig{Addr: "127.0.0.1:99999"}, "addr: port must be"},
		{"negative partitions", BrokerConfig{Partitions: -1}, "partitions: must be >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
