package cftrain

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Interaction is one user action on an item: the bundle's item number,
// a dense user number (0..users-1), when, and how strong (a click 1, a
// purchase more; the caller's mapping of event types). Repeated (user,
// item) pairs add up. Weights must be finite and >= 0; with a half-life
// an interaction newer than now is not decayed, and one with the zero
// Time decays to nothing (it is dropped).
type Interaction struct {
	User   int32
	Item   int32
	Time   time.Time
	Weight float32
}

// Report says what a training run did.
type Report struct {
	// Users with at least one interaction, Items the catalog size, and
	// Interactions the distinct (user, item) pairs trained on (duplicates
	// merged, weights decayed to 0 dropped, heavy users capped).
	Users, Items, Interactions int
	Pairs                      int64 // co-engagement pairs counted (neighbours)
	Seconds                    float64
}

// ErrInput is wrapped by the errors about the interactions themselves.
var ErrInput = errors.New("invalid interactions")

// matrix is the users x items weights twice over: rows by user (users
// renumbered densely in order, those without interactions dropped) and
// rows by item. Within a row, columns ascend.
type matrix struct {
	users, items int
	uStart       []int // users+1
	uItem        []int32
	uW           []float32
	uLast        []int64 // newest time of each user row's pair, unix ns
	iStart       []int   // items+1
	iUser        []int32
	iW           []float32
}

// entry is one interaction on the way to the matrix.
type entry struct {
	key  uint64 // user<<32 | item, so one sort groups and orders both
	w    float32
	last int64 // newest time of the pair, unix ns, for the heavy-user cap
}

// buildMatrix validates, decays, merges duplicates, caps each user to
// their maxUser most recent items (0: all) and builds both row orders.
// users < 0 means unknown (any non-negative user number is allowed).
func buildMatrix(ctx context.Context, in []Interaction, users, items int, now time.Time, halfLife time.Duration, maxUser int) (*matrix, error) {
	if items < 0 || items > math.MaxInt32 {
		return nil, fmt.Errorf("%w: items %d outside 0..%d", ErrInput, items, math.MaxInt32)
	}
	es := make([]entry, 0, len(in))
	for k, x := range in {
		switch {
		case x.Item < 0 || int(x.Item) >= items:
			return nil, fmt.Errorf("%w: interaction %d: item %d outside 0..%d", ErrInput, k, x.Item, items-1)
		case x.User < 0:
			return nil, fmt.Errorf("%w: interaction %d: user %d is negative", ErrInput, k, x.User)
		case users >= 0 && int(x.User) >= users:
			return nil, fmt.Errorf("%w: interaction %d: user %d outside 0..%d", ErrInput, k, x.User, users-1)
		case !(x.Weight >= 0) || math.IsInf(float64(x.Weight), 0):
			return nil, fmt.Errorf("%w: interaction %d: weight %v must be finite and >= 0", ErrInput, k, x.Weight)
		}
		w := x.Weight
		if halfLife > 0 {
			if age := now.Sub(x.Time); age > 0 {
				w = float32(float64(w) * math.Exp2(-float64(age)/float64(halfLife)))
			}
		}
		if w > 0 {
			es = append(es, entry{key: uint64(x.User)<<32 | uint64(x.Item), w: w, last: x.Time.UnixNano()})
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
	// Merge runs of one pair in place.
	out := es[:0]
	for _, e := range es {
		if n := len(out); n > 0 && out[n-1].key == e.key {
			out[n-1].w += e.w
			out[n-1].last = max(out[n-1].last, e.last)
			continue
		}
		out = append(out, e)
	}
	es = out
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &matrix{items: items, uStart: []int{0}}
	m.uItem, m.uW = make([]int32, 0, len(es)), make([]float32, 0, len(es))
	m.uLast = make([]int64, 0, len(es))
	for lo := 0; lo < len(es); {
		hi := lo + 1
		for hi < len(es) && es[hi].key>>32 == es[lo].key>>32 {
			hi++
		}
		row := es[lo:hi]
		if maxUser > 0 && len(row) > maxUser {
			// Most recent first, ties by item, then back to item order.
			slices.SortFunc(row, func(a, b entry) int {
				if c := cmp.Compare(b.last, a.last); c != 0 {
					return c
				}
				return cmp.Compare(a.key, b.key)
			})
			row = row[:maxUser]
			slices.SortFunc(row, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
		}
		for _, e := range row {
			m.uItem = append(m.uItem, int32(uint32(e.key)))
			m.uW = append(m.uW, e.w)
			m.uLast = append(m.uLast, e.last)
		}
		m.uStart = append(m.uStart, len(m.uItem))
		lo = hi
	}
	m.users = len(m.uStart) - 1
	es = nil
	// Rows by item: a counting sort over the user rows, which visits users
	// in order, so each item's users ascend.
	m.iStart = make([]int, items+1)
	for _, i := range m.uItem {
		m.iStart[i+1]++
	}
	for i := range items {
		m.iStart[i+1] += m.iStart[i]
	}
	m.iUser, m.iW = make([]int32, len(m.uItem)), make([]float32, len(m.uItem))
	next := slices.Clone(m.iStart[:items])
	for u := range m.users {
		for p := m.uStart[u]; p < m.uStart[u+1]; p++ {
			i := m.uItem[p]
			m.iUser[next[i]], m.iW[next[i]] = int32(u), m.uW[p]
			next[i]++
		}
	}
	return m, ctx.Err()
}

func (m *matrix) userRow(u int) ([]int32, []float32) {
	lo, hi := m.uStart[u], m.uStart[u+1]
	return m.uItem[lo:hi], m.uW[lo:hi]
}

func (m *matrix) itemRow(i int) ([]int32, []float32) {
	lo, hi := m.iStart[i], m.iStart[i+1]
	return m.iUser[lo:hi], m.iW[lo:hi]
}

// workerCount resolves a configured worker count (0: GOMAXPROCS).
func workerCount(w int) int {
	if w <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return w
}

// parallel runs fn over [0, n) in chunks on workers goroutines, each
// passing its worker number (below workers) for per-worker state, and
// stops early when ctx is done, returning its error.
func parallel(ctx context.Context, n, workers, chunk int, fn func(worker, lo, hi int)) error {
	workers = max(1, min(workers, (n+chunk-1)/chunk))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					return
				}
				fn(w, lo, min(lo+chunk, n))
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}
