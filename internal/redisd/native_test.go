package redisd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"
)

func TestServer_Native(t *testing.T) {
	s := startTest(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()

	// The Lua appends ARGV[1] to a string; the native twin does the same
	// and says so by returning 2 where the Lua returns 1.
	const src = `redis.call('SET', KEYS[1], (redis.call('GET', KEYS[1]) or '') .. ARGV[1]) return 1`
	script := redis.NewScript(src)
	if got, err := script.Run(ctx, c, []string{"k"}, "a").Int(); err != nil || got != 1 {
		t.Fatalf("before Native: %d, %v; want the Lua's 1", got, err)
	}
	s.Native(src, func(kv KV, keys, args []string) (any, error) {
		v, _, err := kv.Get(keys[0])
		if err != nil {
			return nil, err
		}
		return int64(2), kv.Set(keys[0], v+args[0], time.Minute)
	})
	// EVALSHA without SCRIPT LOAD, and EVAL, both reach the native script.
	if got, err := script.EvalSha(ctx, c, []string{"k"}, "b").Int(); err != nil || got != 2 {
		t.Fatalf("EVALSHA: %d, %v; want the native 2", got, err)
	}
	if got, err := script.Eval(ctx, c, []string{"k"}, "c").Int(); err != nil || got != 2 {
		t.Fatalf("EVAL: %d, %v; want the native 2", got, err)
	}
	if v, _ := c.Get(ctx, "k").Result(); v != "abc" {
		t.Errorf("k = %q, want abc", v)
	}
	if ttl, _ := c.PTTL(ctx, "k").Result(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL %v, want the native script's minute", ttl)
	}
	// Other scripts still run as Lua; errors come back as Redis errors.
	if got, err := c.Eval(ctx, "return 7", nil).Int(); err != nil || got != 7 {
		t.Errorf("other Lua: %d, %v", got, err)
	}
	if err := c.Do(ctx, "EVALSHA", script.Hash(), "5", "k").Err(); err == nil || !strings.Contains(err.Error(), "keys") {
		t.Errorf("more keys than arguments: %v, want an error", err)
	}
	c.LPush(ctx, "l", "x")
	if err := script.EvalSha(ctx, c, []string{"l"}, "d").Err(); err == nil || !strings.Contains(err.Error(), "wrong kind") {
		t.Errorf("a list key: %v, want a wrong-type error", err)
	}
}

// TestServer_TTLsExpire: the embedded server expires keys as time passes
// (miniredis alone never does), so capped state really is capped.
func TestServer_TTLsExpire(t *testing.T) {
	s := startTest(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Exists(ctx, "k").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key with a 500ms TTL still exists after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExpiry_Deadlines: due returns a key once its latest deadline has
// passed, waits for a refreshed one, honours a shortened one, and forgets
// a key whose TTL was removed.
func TestExpiry_Deadlines(t *testing.T) {
	var e expiry
	t0 := time.Unix(1000, 0)
	e.set("a", t0.Add(time.Second))
	e.set("b", t0.Add(2*time.Second))
	e.set("b", t0.Add(5*time.Second)) // refreshed
	e.set("c", t0.Add(9*time.Second))
	e.set("c", t0.Add(3*time.Second)) // shortened
	e.set("d", t0.Add(time.Second))
	e.forget("d")
	check := func(at time.Duration, want ...string) {
		t.Helper()
		got := e.due(t0.Add(at))
		if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("due at +%v = %v, want %v", at, got, want)
		}
	}
	check(0)
	check(time.Second, "a")
	check(2 * time.Second)
	check(3*time.Second, "c")
	check(5*time.Second, "b")
	check(9 * time.Second) // c's first, longer deadline: stale, dropped
	if len(e.h) != 0 || len(e.at) != 0 {
		t.Fatalf("left %d heap entries, %d deadlines", len(e.h), len(e.at))
	}
	// A thousand refreshes of one key keep one heap entry.
	for i := range 1000 {
		e.set("hot", t0.Add(time.Duration(i+10)*time.Second))
	}
	if len(e.h) != 1 {
		t.Fatalf("%d heap entries for one refreshed key", len(e.h))
	}
}

// TestServer_TTLKinds: TTLs from commands and from native scripts expire;
// a key overwritten without a TTL, or refreshed, does not go early.
func TestServer_TTLKinds(t *testing.T) {
	s := startTest(t)
	const src = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', 300)"
	s.Native(src, func(kv KV, keys, args []string) (any, error) {
		return int64(0), kv.Set(keys[0], args[0], 300*time.Millisecond)
	})
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Set(ctx, "px", "v", 300*time.Millisecond).Err())
	must(c.Eval(ctx, src, []string{"native"}, "v").Err())
	must(c.Set(ctx, "persisted", "v", 300*time.Millisecond).Err())
	must(c.Set(ctx, "persisted", "v2", 0).Err())
	must(c.Set(ctx, "refreshed", "v", 300*time.Millisecond).Err())
	must(c.PExpire(ctx, "refreshed", time.Hour).Err())
	deadline := time.Now().Add(10 * time.Second)
	for c.Exists(ctx, "px", "native").Val() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("keys with a 300ms TTL still exist after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.Exists(ctx, "persisted", "refreshed").Val() != 2 {
		t.Fatal("a key overwritten without a TTL, or refreshed to an hour, expired")
	}
}

// TestServer_StoredStringsOwnTheirBytes: a command's arguments share the
// buffer they were read into; what the store keeps (keys, values, list
// elements, by a command or a native script) is copied out of it, so a
// small key held for a day does not hold the buffer, while the arguments
// of a read are used in place.
func TestServer_StoredStringsOwnTheirBytes(t *testing.T) {
	s := startTest(t)
	s.Native("native-store", func(kv KV, keys, args []string) (any, error) {
		if err := kv.Set(keys[0], strings.Clone(args[0]), time.Minute); err != nil {
			return nil, err
		}
		return int64(1), kv.SetList(keys[1], args[1:], time.Minute)
	})
	peer := server.NewPeer(bufio.NewWriter(io.Discard))
	read := func(args ...string) []string {
		t.Helper()
		got, err := readCommand(bufio.NewReader(strings.NewReader(resp(args...))))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	shares := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	db := s.mr.DB(0)

	set := read("SET", "seen:event-0001", "1", "EX", "60", "NX")
	key := set[1]
	s.mr.Server().Dispatch(peer, set)
	if keys := db.Keys(); len(keys) != 1 || keys[0] != key || shares(keys[0], key) {
		t.Errorf("SET stored %q sharing the read buffer: %v", keys, len(keys) == 1 && shares(keys[0], key))
	}

	get := read("GET", "seen:event-0001")
	arg := get[1]
	s.mr.Server().Dispatch(peer, get)
	if !shares(get[1], arg) {
		t.Error("GET's argument was copied; reads use the buffer in place")
	}

	eval := read("EVAL", "native-store", "2", "item:a", "hist:a", "v1", "x", "y")
	s.mr.Server().Dispatch(peer, eval)
	// The native script got the arguments in place; the keys and list
	// elements it stored are their own (a Set value is the script's).
	if v, err := db.Get("item:a"); err != nil || v != "v1" {
		t.Errorf("native Set stored %q, %v", v, err)
	}
	for _, k := range db.Keys() {
		if k == "item:a" && shares(k, eval[3]) || k == "hist:a" && shares(k, eval[4]) {
			t.Errorf("native script's key %q shares the read buffer", k)
		}
	}
	l, err := db.List("hist:a")
	if err != nil || len(l) != 2 || l[0] != "x" || shares(l[0], eval[6]) || shares(l[1], eval[7]) {
		t.Errorf("native SetList stored %q (%v), sharing the read buffer", l, err)
	}
}
