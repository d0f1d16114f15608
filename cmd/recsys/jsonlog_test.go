package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/world"
)

// TestServe_JSONLogsWithRedisDown runs the real binary in JSON log mode
// with Redis unreachable, drives search, recommend and feedback through
// it, stops it, and requires every line it wrote (stdout and stderr,
// libraries included) to parse as one JSON object with one error key.
func TestServe_JSONLogsWithRedisDown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and a bundle; -short skips it")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	writeWorld(t, dir, world.Config{Items: 1000, Users: 20, Seed: 4})
	buildBundle(t, cfg)
	bin := filepath.Join(dir, "recsys")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there now: Redis is down

	cmd := exec.Command(bin, "serve", "--config", "../../config.yaml")
	cmd.Env = append(os.Environ(),
		"RECSYS_LOG_FORMAT=json", "RECSYS_LOG_LEVEL=debug",
		"RECSYS_SERVER_ADDR=127.0.0.1:0", "RECSYS_SERVER_ADMIN_ADDR=127.0.0.1:0",
		"RECSYS_BUNDLES_DIR="+cfg.Bundles.Dir, "RECSYS_BUNDLES_POLL_INTERVAL=0",
		"RECSYS_REDIS_ADDR="+deadAddr,
		"RECSYS_KAFKA_SPOOL_DIR="+filepath.Join(dir, "spool"),
		"RECSYS_EMBEDDED_KAFKA_DATA_DIR="+filepath.Join(dir, "kafka"),
		"RECSYS_ONNXRUNTIME_LIBRARY="+cfg.ONNXRuntime.Library,
	)
	var mu sync.Mutex
	var lines []string
	addr := make(chan string, 1)
	collect := func(r io.Reader) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			lines = append(lines, line)
			mu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "serving" {
				if a, ok := m["addr"].(string); ok {
					select {
					case addr <- a:
					default:
					}
				}
			}
		}
	}
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	readers.Go(func() { collect(stdout) })
	readers.Go(func() { collect(stderr) })
	defer cmd.Process.Kill()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("no serving line within 60s:\n%s", strings.Join(lines, "\n"))
	}
	for i := range 10 {
		code, body := post(t, base+"/v1/search", map[string]any{"query": "wireless headphones"})
		if code != http.StatusOK || !bytes.Contains(body, []byte("degraded")) {
			t.Fatalf("search %d with Redis down: %d %s", i, code, body)
		}
		post(t, base+"/v1/recommend", map[string]any{"user": map[string]any{"id": fmt.Sprintf("u%d", i)}})
		post(t, base+"/v1/feedback", map[string]any{"type": "click", "user_id": "u1", "item_id": "item-0000001"})
	}
	http.Get(base + "/readyz")
	time.Sleep(2 * time.Second) // the counters consumer and the seeder retry meanwhile
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	readers.Wait()

	mu.Lock()
	defer mu.Unlock()
	errorLines := 0
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %q", i+1, line)
		}
		if _, ok := m["err"]; ok {
			t.Fatalf("line %d spells the error key err: %s", i+1, line)
		}
		if _, ok := m["error"]; ok {
			errorLines++
		}
	}
	if errorLines == 0 {
		t.Fatalf("no line names an error with Redis down (%d lines)", len(lines))
	}
	t.Logf("%d lines, all JSON; %d carry an error", len(lines), errorLines)
}
