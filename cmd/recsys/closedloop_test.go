package main

import (
	"encoding/json"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/recsys-dev/recsys/internal/ort"
)

// TestClosedLoop runs scripts/closed-loop.sh, the documented cycle of
// must-show 1, at a small scale: the real binary (built without the race
// detector, so the simulated traffic is fast) serving the linear ranker,
// simulated sessions, `train rank` estimating position bias from the
// randomized impressions and promoting through the gate, a rebuild and
// reload, and the same sessions again. The script fails when the gate does
// not promote; the test also wants the next traffic's CTR and NDCG against
// the hidden utility higher than the linear ranker's on the same seeds (both
// asking for the recommendation sources a bundle without events has; the
// script also measures the collaborative ones and prints the difference).
func TestClosedLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the loop; -short skips it")
	}
	for _, tool := range []string{"curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the closed-loop script needs %s: %v", tool, err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", "bin/recsys", "./cmd/recsys")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("scripts/closed-loop.sh", dir)
	cmd.Dir = root
	// 6000 training sessions: with hybrid retrieval the linear ranker's
	// results already match the query's words, so what is left to learn
	// from clicks (brands, price bands, popularity) needs more traffic
	// than the 3000 sessions that sufficed before; at 3000 the gate
	// rejected by 0.001-0.01 NDCG in three runs of three. With the
	// recommendation sources merged (popular and fresh beside content, the
	// fused retrieval score, the stored history behind the request's) the
	// linear ranker's recommendations improved and 6000 sessions were
	// rejected once by 0.002: 10000. At 10000 CI once kept 3 trees
	// trained from 0 that the gate promoted and the next traffic found
	// 3.7% worse than the linear ranker: the trees now start from it (see
	// the README, "The trees start from the linear ranker").
	cmd.Env = append(os.Environ(), "ITEMS=2000", "USERS=200", "TRAIN_SESSIONS=10000", "EVAL_SESSIONS=800",
		"EXPLORE=0.1", "PORT="+freePort(t), "ADMIN_PORT="+freePort(t), "KAFKA_PORT="+freePort(t), "RECSYS_ONNXRUNTIME_LIBRARY="+lib)
	out, err := cmd.CombinedOutput()
	t.Logf("closed-loop.sh:\n%s", out)
	if err != nil {
		t.Fatalf("closed-loop.sh: %v", err)
	}
	read := func(name string) (ctr, ndcg float64) {
		b, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ CTR, NDCG float64 }
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r.CTR, r.NDCG
	}
	lc, ln := read("eval-linear")
	tc, tn := read("eval-trees")
	if !(tc > lc && tn > ln) {
		t.Fatalf("trained ranker CTR %.4f, NDCG %.4f; linear %.4f, %.4f: want both higher", tc, tn, lc, ln)
	}
}

// handedOut holds the ports freePort returned.
var handedOut sync.Map

func freePort(t *testing.T) string {
	t.Helper()
	// Below the kernel's ephemeral range (32768 and up by default): a port
	// from there, free now, may be taken by another test's outgoing
	// connection or port-0 listener before the script binds it (CI saw
	// the loop's server exit, its address taken). Only a listener asking
	// for this number can take it here.
	for range 100 {
		port := 20000 + rand.IntN(12000)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue // a test of this process has it, maybe not bound yet
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			l.Close()
			return strconv.Itoa(port)
		}
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}
