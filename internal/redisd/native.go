package redisd

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
)

// KV is the embedded server's data as a native script sees it. Every call
// of one script runs with the others excluded (see Native), so a script's
// reads and writes are one step, as a Lua script's are in Redis.
type KV interface {
	// Get returns a string key's value and whether it exists.
	Get(key string) (string, bool, error)
	// Set stores a string with a TTL (0: none). The value is kept as
	// given: one sliced from the script's arguments would keep the
	// buffer the command was read into, so pass a copy.
	Set(key, value string, ttl time.Duration) error
	// List returns a list's elements, head first.
	List(key string) ([]string, error)
	// SetList replaces a list with values, head first, with a TTL.
	SetList(key string, values []string, ttl time.Duration) error
}

// NativeScript runs in Go what a Lua script does, for the embedded server:
// its Lua interpreter builds a fresh state per call, which cost a quarter of
// the process's CPU under load (profiled at 300 searches/s, each impression
// running ten item scripts). The result is what the script returns: an
// int64 (an integer reply) or a string (a bulk string).
type NativeScript func(kv KV, keys, args []string) (any, error)

// Native makes EVALSHA (and EVAL) of the Lua source src run fn instead.
// The caller keeps src and fn equivalent; the same contract tests run the
// Lua on a real redis-server and fn here. Scripts this server was not told
// about run in its Lua interpreter as before.
func (s *Server) Native(src string, fn NativeScript) {
	sum := sha1.Sum([]byte(src))
	s.nmu.Lock()
	defer s.nmu.Unlock()
	if s.natives == nil {
		s.natives = map[string]NativeScript{}
		s.srcs = map[string]string{}
	}
	sha := hex.EncodeToString(sum[:])
	s.natives[sha] = fn
	s.srcs[src] = sha
}

// readOnly are the commands that store none of their arguments (the reads
// the feature fetches send, and the connection's own).
var readOnly = map[string]bool{
	"GET": true, "MGET": true, "HGET": true, "HMGET": true, "HGETALL": true, "HLEN": true, "HEXISTS": true,
	"LRANGE": true, "LLEN": true, "LINDEX": true, "EXISTS": true, "TTL": true, "PTTL": true, "TYPE": true,
	"STRLEN": true, "SMEMBERS": true, "SISMEMBER": true, "SCARD": true, "ZRANGE": true, "ZSCORE": true,
	"ZCARD": true, "SCAN": true, "KEYS": true, "DBSIZE": true, "PING": true, "ECHO": true, "INFO": true,
	"SELECT": true, "HELLO": true, "AUTH": true, "CLIENT": true, "COMMAND": true, "QUIT": true,
	"DEL": true, "UNLINK": true, "EXEC": true, "MULTI": true, "DISCARD": true,
}

// cloneAll replaces each string of s by a copy of its own.
func cloneAll(s []string) {
	for i := range s {
		s[i] = strings.Clone(s[i])
	}
}

// hook answers EVALSHA and EVAL of a native script; anything else goes on
// to miniredis.
func (s *Server) hook(c *server.Peer, cmd string, args ...string) bool {
	if !readOnly[cmd] && cmd != "EVALSHA" && cmd != "EVAL" {
		// What the store keeps must not point into the buffer the command
		// was read into (readCommand shares one among its arguments): a
		// 40-byte deduplication key would hold 256 bytes or more for its
		// whole TTL. args is the dispatcher's slice, so the handler sees
		// the copies. Native scripts copy in kv; Lua ones below. SET keeps
		// only its key and value (not EX 60 NX).
		if cmd == "SET" && len(args) > 2 {
			cloneAll(args[:2])
		} else {
			cloneAll(args)
		}
	}
	s.exp.observe(cmd, args, time.Now())
	switch cmd {
	case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR":
		// Their state outlives the command and needs miniredis's own
		// connection loop to end (conn.go): refused, not half served.
		c.WriteError("ERR " + strings.ToLower(cmd) + " is not served by the embedded server")
		return true
	}
	if cmd != "EVALSHA" && cmd != "EVAL" || len(args) < 2 {
		return false
	}
	s.nmu.Lock()
	var fn NativeScript
	if cmd == "EVALSHA" {
		fn = s.natives[strings.ToLower(args[0])]
	} else if sha, ok := s.srcs[args[0]]; ok {
		fn = s.natives[sha]
	}
	s.nmu.Unlock()
	if fn == nil {
		cloneAll(args) // miniredis's Lua may store any of them
		return false
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 0 || n > len(args)-2 {
		c.WriteError("ERR Number of keys can't be greater than number of args")
		return true
	}
	keys, rest := args[2:2+n], args[2+n:]
	// One native script at a time: they are the only writers of their
	// keys, so excluding each other makes each one atomic.
	s.run.Lock()
	v, err := fn(kv{db: s.mr.DB(0), exp: &s.exp}, keys, rest)
	s.run.Unlock()
	if err != nil {
		c.WriteError("ERR " + err.Error())
		return true
	}
	switch v := v.(type) {
	case int64, string:
		s.reply(c, v)
	default:
		c.WriteError(fmt.Sprintf("ERR native script returned %T", v))
	}
	return true
}

// reply writes a native script's integer or bulk-string reply. On the
// connections this server reads itself (conn.go: one goroutine reads,
// dispatches and writes, so nothing else writes meanwhile) it goes to the
// buffer directly; the peer's own writers take a lock, a closure and a
// formatted print per reply, four allocations for every item script.
func (s *Server) reply(c *server.Peer, v any) {
	wv, ok := s.writers.Load(c)
	if !ok {
		switch v := v.(type) {
		case int64:
			c.WriteInt(int(v))
		case string:
			c.WriteBulk(v)
		}
		return
	}
	w := wv.(*bufio.Writer)
	// The numbers are formatted into the writer's free space
	// (AvailableBuffer): a local array would escape to the heap.
	switch v := v.(type) {
	case int64:
		w.WriteByte(':')
		w.Write(strconv.AppendInt(w.AvailableBuffer(), v, 10))
	case string:
		w.WriteByte('$')
		w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(len(v)), 10))
		w.WriteString("\r\n")
		w.WriteString(v)
	}
	w.WriteString("\r\n")
}

// kv is KV over miniredis's database 0; exp notes the TTLs it sets.
type kv struct {
	db  *miniredis.RedisDB
	exp *expiry
}

func (k kv) Get(key string) (string, bool, error) {
	v, err := k.db.Get(key)
	if errors.Is(err, miniredis.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return v, true, nil
}

func (k kv) Set(key, value string, ttl time.Duration) error {
	if !k.db.Exists(key) {
		key = strings.Clone(key) // a new key is kept: see hook
	}
	if err := k.db.Set(key, value); err != nil {
		return err
	}
	if ttl > 0 {
		k.db.SetTTL(key, ttl)
		k.exp.set(key, time.Now().Add(ttl))
	} else {
		k.exp.forget(key)
	}
	return nil
}

func (k kv) List(key string) ([]string, error) {
	v, err := k.db.List(key)
	if errors.Is(err, miniredis.ErrKeyNotFound) {
		return nil, nil
	}
	return v, err
}

func (k kv) SetList(key string, values []string, ttl time.Duration) error {
	if k.db.Exists(key) && k.db.Type(key) != "list" {
		return errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")
	}
	k.db.Del(key)
	if len(values) == 0 {
		return nil
	}
	key, values = strings.Clone(key), slices.Clone(values) // see hook
	cloneAll(values)
	if _, err := k.db.Push(key, values...); err != nil {
		return err
	}
	if ttl > 0 {
		k.db.SetTTL(key, ttl)
		k.exp.set(key, time.Now().Add(ttl))
	}
	return nil
}

// tick deletes the keys whose TTL has run out, once a second (see
// expiry).
func (s *Server) tick(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			db := s.mr.DB(0)
			for _, key := range s.exp.due(now) {
				// A key overwritten without a TTL since has none now.
				if db.TTL(key) > 0 {
					db.Del(key)
				}
			}
		}
	}
}
