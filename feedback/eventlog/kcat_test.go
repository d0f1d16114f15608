package eventlog

import (
	"context"
	"encoding/json"
	"github.com/recsys-dev/recsys/feedback"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestProducer_KcatReads proves the records are plain Kafka records: kcat
// (librdkafka, an independent implementation of the protocol) reads every
// event the Producer wrote, with the user id as key.
func TestProducer_KcatReads(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (Debian package kcat); skipping the independent-client check")
	}
	b := startTestBroker(t, "")
	cfg := testConfig(b)
	p := newTestProducer(t, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	evs := testEvents(15)
	for _, ev := range evs {
		if err := p.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(cfg.Brokers, ","), "-t", cfg.Topic,
		"-o", "beginning", "-e", "-q", "-f", "%k %s\n")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("kcat: %v\n%s", err, stderr)
	}

	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		key, value, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("kcat line without key and value: %q", line)
		}
		var ev feedback.Event
		if err := json.Unmarshal([]byte(value), &ev); err != nil {
			t.Fatalf("kcat value is not an event: %v: %q", err, value)
		}
		if key != ev.UserID {
			t.Errorf("event %s: key %q, user %q", ev.EventID, key, ev.UserID)
		}
		seen[ev.EventID] = true
	}
	for _, ev := range evs {
		if !seen[ev.EventID] {
			t.Errorf("kcat did not read event %s", ev.EventID)
		}
	}
	if len(seen) != len(evs) {
		t.Errorf("kcat read %d distinct events, want %d", len(seen), len(evs))
	}
}
