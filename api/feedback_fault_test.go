package api

import (
	"context"
	"fmt"
	"github.com/recsys-dev/recsys/internal/realtime"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/counters"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/redisd"
)

// Must-show 1: events posted over HTTP while the broker is stopped and
// restarted, or while the server process is killed and restarted; every
// acknowledged event id must be on the topic, exactly once after dedupe,
// counted by a consumer group. RECSYS_FAULT_EVENTS sets the event count
// (50000 for the must-show run); the default keeps `go test` quick.
func faultEvents(t *testing.T) int {
	if s := os.Getenv("RECSYS_FAULT_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 {
			t.Fatalf("RECSYS_FAULT_EVENTS=%q: want an integer >= 100", s)
		}
		return n
	}
	if testing.Short() {
		return 300
	}
	return 2000
}

const faultWorkers = 32

func faultEvent(i int) string {
	return fmt.Sprintf(`{"event_id":"f-%06d","type":"click","schema_version":1,"timestamp":"2026-03-01T11:59:00Z","user_id":"u%d","item_id":"i%d"}`, i, i%97, i%13)
}

// poster posts events 0..n-1 with faultWorkers clients, retrying each until
// it is acknowledged (a connection error, or a 503, means "not accepted,
// retry with the same id"). It records acknowledged ids.
type poster struct {
	base   string
	client *http.Client
	acked  sync.Map
	nAcked atomic.Int64
	tries  atomic.Int64
}

func newPoster(base string) *poster {
	return &poster{base: base, client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: faultWorkers, MaxConnsPerHost: faultWorkers},
	}}
}

func (p *poster) run(t *testing.T, n int) time.Duration {
	start := time.Now()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range faultWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				for attempt := 0; ; attempt++ {
					if attempt > 2000 {
						t.Errorf("event %d never acknowledged", i)
						return
					}
					p.tries.Add(1)
					resp, err := p.client.Post(p.base+"/v1/feedback", "application/json", strings.NewReader(faultEvent(i)))
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusAccepted {
							p.acked.Store(fmt.Sprintf("f-%06d", i), true)
							p.nAcked.Add(1)
							break
						}
						if resp.StatusCode != http.StatusServiceUnavailable {
							t.Errorf("event %d: status %d", i, resp.StatusCode)
							return
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// waitAcked blocks until at least n events were acknowledged.
func (p *poster) waitAcked(n int64) {
	for p.nAcked.Load() < n {
		time.Sleep(5 * time.Millisecond)
	}
}

func restartableBroker(t *testing.T, dir, addr string) *eventlog.Broker {
	t.Helper()
	var lastErr error
	for range 100 {
		b, err := eventlog.StartBroker(eventlog.BrokerConfig{DataDir: dir, Addr: addr}, nil)
		if err == nil {
			return b
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("start broker on %s: %v", addr, lastErr)
	return nil
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func faultKafkaConfig(brokers []string) eventlog.Config {
	// A short produce timeout makes the switch to the spool quick.
	return eventlog.Config{Brokers: brokers, Topic: "fault.events", Partitions: 4, ProduceTimeout: time.Second}
}

// newFaultSink builds the producer, spool and sink the server uses, and
// runs the drainer until the returned stop is called.
func newFaultSink(t testing.TB, kcfg eventlog.Config, spoolDir string) (*eventlog.Sink, func()) {
	p, err := eventlog.NewProducer(kcfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Small segments, so spooling rolls to a new file every few dozen
	// events: the kills land during rolls and drains too.
	sp, err := eventlog.OpenSpool(eventlog.SpoolConfig{Dir: spoolDir, SegmentBytes: 16 << 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := eventlog.NewSink(p, sp, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// With the broker down (a restart during an outage) the server starts
	// anyway and spools; the drainer creates the topics later.
	_ = sink.EnsureTopics(ctx)
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sink.Run(rctx) }()
	return sink, func() { rcancel(); <-done; p.Close(); sp.Close() }
}

// verifyDownstream reads the topic with a consumer group (the counter
// updater, deduplicating by event id in Redis) and with a replay, and checks
// that every acknowledged id is there exactly once after dedupe.
func verifyDownstream(t *testing.T, kcfg eventlog.Config, p *poster, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	seen := map[string]int{}
	records := 0
	if _, err := eventlog.Replay(ctx, kcfg, eventlog.Range{}, nil, nil, func(ev feedback.Event, _ *kgo.Record) error {
		seen[ev.EventID]++
		records++
		return nil
	}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	missing := 0
	p.acked.Range(func(k, _ any) bool {
		if seen[k.(string)] == 0 {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d acknowledged events missing from the topic", missing)
	}
	if int(p.nAcked.Load()) != n || len(seen) != n {
		t.Fatalf("acknowledged %d, distinct on topic %d, want %d", p.nAcked.Load(), len(seen), n)
	}

	rs, err := redisd.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	c, err := counters.New(kcfg, counters.Config{Group: "fault-check", KeyPrefix: "f"}, rdb, counters.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(cctx) }()
	for {
		counted, dups := c.Stats()
		if counted+dups >= int64(records) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("consumer counted %d+%d duplicates of %d records", counted, dups, records)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ccancel()
	<-done
	counted, dups := c.Stats()
	// The events' timestamps are equal, so the decayed counts add up
	// exactly (no decay between them).
	var clicks int64
	for i := range 13 {
		v, _ := rdb.Get(ctx, realtime.ItemKey("f", fmt.Sprintf("i%d", i))).Result()
		st, _ := realtime.Parse(v)
		clicks += int64(math.Round(st.Clicks))
	}
	if counted != int64(n) || clicks != int64(n) {
		t.Fatalf("consumer group counted %d distinct events (%d clicks in Redis), want %d", counted, clicks, n)
	}
	t.Logf("downstream: %d records, %d distinct ids = %d acknowledged; consumer group counted %d, dropped %d duplicates",
		records, len(seen), n, counted, dups)
}

func TestFeedbackFault_BrokerRestarts(t *testing.T) {
	n := faultEvents(t)

	run := func(t *testing.T, faults bool) float64 {
		addr := freeLoopbackAddr(t)
		dir := t.TempDir()
		b := restartableBroker(t, dir, addr)
		defer func() { b.Close() }()
		kcfg := faultKafkaConfig([]string{addr})
		sink, stop := newFaultSink(t, kcfg, t.TempDir())
		env := newTestEnv(t, func(_ *Config, d *Deps) { d.Feedback = sink })
		env.listen(t)
		p := newPoster(env.base)
		var faultErr error
		faultsDone := make(chan struct{})
		go func() {
			defer close(faultsDone)
			if !faults {
				return
			}
			for _, at := range []float64{0.2, 0.55} {
				p.waitAcked(int64(at * float64(n)))
				b.Close()
				// Posting goes on against the spool while the broker is down.
				p.waitAcked(int64((at + 0.15) * float64(n)))
				b = restartableBroker(t, dir, addr)
			}
		}()
		elapsed := p.run(t, n)
		<-faultsDone
		if faultErr != nil {
			t.Fatal(faultErr)
		}
		deadline := time.Now().Add(120 * time.Second)
		for sink.Pending() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		verifyDownstream(t, kcfg, p, n)
		rate := float64(n) / elapsed.Seconds()
		t.Logf("faults=%v: %d events acknowledged in %v (%.0f events/s, %d POSTs)", faults, n, elapsed.Round(time.Millisecond), rate, p.tries.Load())
		return rate
	}
	var clean, faulty float64
	t.Run("no faults", func(t *testing.T) { clean = run(t, false) })
	t.Run("broker stopped and restarted twice", func(t *testing.T) { faulty = run(t, true) })
	t.Logf("events/s accepted: %.0f without faults, %.0f with two broker restarts (same run)", clean, faulty)
}

// TestFeedbackFault_ServerProcessHelper is the server process that
// TestFeedbackFault_ServerKilled starts and kills; it does nothing in a
// normal run.
func TestFeedbackFault_ServerProcessHelper(t *testing.T) {
	addr := os.Getenv("RECSYS_FAULT_CHILD_ADDR")
	if addr == "" {
		t.Skip("helper process for TestFeedbackFault_ServerKilled")
	}
	kcfg := faultKafkaConfig([]string{os.Getenv("RECSYS_FAULT_CHILD_BROKER")})
	sink, stop := newFaultSink(t, kcfg, os.Getenv("RECSYS_FAULT_CHILD_SPOOL"))
	defer stop()
	env := newTestEnv(t, func(_ *Config, d *Deps) { d.Feedback = sink })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = env.srv.Serve(ln) }()
	// Serve until the parent closes stdin (or kills us).
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func TestFeedbackFault_ServerKilled(t *testing.T) {
	n := faultEvents(t)
	brokerAddr, httpAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	brokerDir, spoolDir := t.TempDir(), t.TempDir()
	b := restartableBroker(t, brokerDir, brokerAddr)
	defer func() { b.Close() }()

	start := func() (*exec.Cmd, io.WriteCloser) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFeedbackFault_ServerProcessHelper$", "-test.timeout=0")
		cmd.Env = append(os.Environ(), "RECSYS_FAULT_CHILD_ADDR="+httpAddr,
			"RECSYS_FAULT_CHILD_BROKER="+brokerAddr, "RECSYS_FAULT_CHILD_SPOOL="+spoolDir)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for range 600 {
			if resp, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
				resp.Body.Close()
				return cmd, stdin
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatal("server process did not come up")
		return nil, nil
	}
	cmd, stdin := start()
	p := newPoster("http://" + httpAddr)
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		// Kill the server while the broker is down, so the kill hits a
		// server that is spooling: what it acknowledged is only on its disk.
		p.waitAcked(int64(0.25 * float64(n)))
		b.Close()
		p.waitAcked(int64(0.45 * float64(n)))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		cmd, stdin = start()
		p.waitAcked(int64(0.6 * float64(n)))
		b = restartableBroker(t, brokerDir, brokerAddr)
	}()
	elapsed := p.run(t, n)
	<-faultsDone
	// Let the restarted server drain its spool, then stop it cleanly.
	kcfg := faultKafkaConfig([]string{brokerAddr})
	waitTopicDistinct(t, kcfg, n)
	stdin.Close()
	_ = cmd.Wait()
	verifyDownstream(t, kcfg, p, n)
	t.Logf("server killed while spooling and restarted: %d events acknowledged in %v (%.0f events/s, %d POSTs)",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), p.tries.Load())
}

// waitTopicDistinct polls until the topic holds n distinct event ids, or
// gives up after two minutes (verifyDownstream then reports what is missing).
func waitTopicDistinct(t *testing.T, kcfg eventlog.Config, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		seen := map[string]bool{}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := eventlog.Replay(ctx, kcfg, eventlog.Range{}, nil, nil, func(ev feedback.Event, _ *kgo.Record) error {
			seen[ev.EventID] = true
			return nil
		})
		cancel()
		if err == nil && len(seen) >= n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
