package redisd

import (
	"container/heap"
	"strconv"
	"strings"
	"sync"
	"time"
)

// expiry expires the embedded server's keys as time passes. miniredis
// keeps a TTL as a duration and expires keys only in FastForward, which
// walks (and sorts) every key under the server's lock: called each second
// it stalled every command for a time growing with the keyspace (p99 of
// searches 5 ms before an overload, 30 ms after it, from the event-id
// marks the overload left). Instead the server notes each key's deadline
// when a TTL is set (by a native script, or by SET EX/PX, SETEX, PSETEX,
// EXPIRE or PEXPIRE, seen in the command hook), and each second deletes
// only the keys that are due: work in proportion to what expires.
//
// miniredis's own TTL for a key is left as set, so TTL and PTTL report the
// TTL as it was given, not what remains.
type expiry struct {
	mu sync.Mutex
	at map[string]int64 // key -> deadline, unix nanoseconds
	h  deadlines
}

type deadline struct {
	at  int64
	key string
}

type deadlines []deadline

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at < d[j].at }
func (d deadlines) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)        { *d = append(*d, x.(deadline)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

// set records that key expires at deadline (replacing an earlier TTL). The
// heap holds at most one entry per key, except briefly when a TTL is
// shortened, so it is bounded by the keys with a TTL, however often a TTL
// is refreshed.
func (e *expiry) set(key string, at time.Time) {
	d := at.UnixNano()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.at == nil {
		e.at = map[string]int64{}
	}
	old, ok := e.at[key]
	e.at[key] = d
	if !ok || d < old {
		heap.Push(&e.h, deadline{at: d, key: key})
	}
}

// forget drops a key whose TTL was removed or that was overwritten
// without one.
func (e *expiry) forget(key string) {
	e.mu.Lock()
	delete(e.at, key)
	e.mu.Unlock()
}

// due pops the keys whose deadline has passed.
func (e *expiry) due(now time.Time) []string {
	n := now.UnixNano()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for len(e.h) > 0 && e.h[0].at <= n {
		x := heap.Pop(&e.h).(deadline)
		d, ok := e.at[x.key]
		switch {
		case !ok:
		case d > n: // refreshed since: wait for the new deadline
			if d != x.at {
				heap.Push(&e.h, deadline{at: d, key: x.key})
			}
		default:
			delete(e.at, x.key)
			out = append(out, x.key)
		}
	}
	return out
}

// observe notes the TTL a command sets, before miniredis runs it.
func (e *expiry) observe(cmd string, args []string, now time.Time) {
	num := func(s string) (int64, bool) {
		v, err := strconv.ParseInt(s, 10, 64)
		return v, err == nil && v > 0
	}
	// The TTL in args[i], in seconds or (for the P commands) milliseconds.
	ttlAt := func(i int) (time.Time, bool) {
		if len(args) <= i {
			return time.Time{}, false
		}
		v, ok := num(args[i])
		unit := time.Second
		if strings.HasPrefix(strings.ToUpper(cmd), "P") {
			unit = time.Millisecond
		}
		return now.Add(time.Duration(v) * unit), ok
	}
	switch strings.ToUpper(cmd) {
	case "EXPIRE", "PEXPIRE", "SETEX", "PSETEX":
		if at, ok := ttlAt(1); ok {
			e.set(args[0], at)
		}
	case "SET":
		if len(args) < 2 {
			return
		}
		ttl := false
		for i := 2; i+1 < len(args); i++ {
			unit := time.Duration(0)
			switch strings.ToUpper(args[i]) {
			case "EX":
				unit = time.Second
			case "PX":
				unit = time.Millisecond
			}
			if v, ok := num(args[i+1]); ok && unit > 0 {
				e.set(args[0], now.Add(time.Duration(v)*unit))
				ttl = true
			}
		}
		if !ttl {
			keep := false
			for _, a := range args[2:] {
				keep = keep || strings.EqualFold(a, "KEEPTTL")
			}
			if !keep {
				e.forget(args[0]) // a plain SET clears the TTL
			}
		}
	case "PERSIST":
		if len(args) >= 1 {
			e.forget(args[0])
		}
	}
}
