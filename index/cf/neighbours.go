package cf

import (
	"errors"
	"fmt"
	"math"

	"github.com/recsys-dev/recsys/index"
)

// ErrInvalid is wrapped by every constructor error (bad input, not bad
// files: those wrap the file errors of file.go).
var ErrInvalid = errors.New("invalid collaborative-filtering data")

// MaxItems bounds the item count: item numbers are int32.
const MaxItems = math.MaxInt32 - 1

// Neighbours is the item-to-item table: for every item up to TopN other
// items with a similarity, best first.
type Neighbours struct {
	// CSR rows: item i's neighbours are ids[offsets[i]:offsets[i+1]] with
	// sims at the same positions. int32 offsets bound the table to 2^31
	// entries, 200 per item for ten million items.
	offsets []int32
	ids     []int32
	sims    []float32
}

// NewNeighbours builds the table over items items from CSR rows: item i's
// neighbours are ids[offsets[i]:offsets[i+1]] with similarities sims at
// the same positions. Each row must be best first (higher similarity
// first, ties by lower item number), name items in range, not the item
// itself, and no item twice; similarities must be finite. The table keeps
// the slices (no copy); the caller must not modify them afterwards.
func NewNeighbours(items int, offsets []int32, ids []int32, sims []float32) (*Neighbours, error) {
	if err := checkNeighbours(items, offsets, ids, sims); err != nil {
		return nil, fmt.Errorf("new neighbours: %w: %w", ErrInvalid, err)
	}
	return &Neighbours{offsets: offsets, ids: ids, sims: sims}, nil
}

// checkNeighbours is the one validation of a table, for NewNeighbours and
// for a loaded file, so a file holds exactly what the constructor accepts.
func checkNeighbours(items int, offsets []int32, ids []int32, sims []float32) error {
	switch {
	case items < 0 || items > MaxItems:
		return fmt.Errorf("items %d outside 0..%d", items, MaxItems)
	case len(offsets) != items+1:
		return fmt.Errorf("%d offsets for %d items (want items+1)", len(offsets), items)
	case len(ids) != len(sims):
		return fmt.Errorf("%d ids but %d similarities", len(ids), len(sims))
	case offsets[0] != 0:
		return fmt.Errorf("offsets[0] is %d, not 0", offsets[0])
	case int(offsets[items]) != len(ids):
		return fmt.Errorf("offsets end at %d but there are %d entries", offsets[items], len(ids))
	}
	// Monotone offsets from 0 to len(ids) keep every row in bounds.
	for i := range items {
		if offsets[i+1] < offsets[i] {
			return fmt.Errorf("offsets decrease at item %d (%d then %d)", i, offsets[i], offsets[i+1])
		}
	}
	// mark[j] == i+1 while checking row i finds a repeated neighbour in
	// O(entries) without clearing between rows.
	mark := make([]int32, items)
	for i := range items {
		lo, hi := offsets[i], offsets[i+1]
		for p := lo; p < hi; p++ {
			j, s := ids[p], sims[p]
			switch {
			case j < 0 || int(j) >= items:
				return fmt.Errorf("item %d: neighbour %d outside 0..%d", i, j, items-1)
			case int(j) == i:
				return fmt.Errorf("item %d lists itself", i)
			case mark[j] == int32(i)+1:
				return fmt.Errorf("item %d lists neighbour %d twice", i, j)
			case math.IsNaN(float64(s)) || math.IsInf(float64(s), 0):
				return fmt.Errorf("item %d: similarity %v to %d is not finite", i, s, j)
			case p > lo && (sims[p-1] < s || sims[p-1] == s && ids[p-1] > j):
				return fmt.Errorf("item %d: neighbours not best first at position %d", i, p-lo)
			}
			mark[j] = int32(i) + 1
		}
	}
	return nil
}

// Of returns item's neighbours and their similarities, best first (views
// into the table; do not modify). An item out of range has none.
func (n *Neighbours) Of(item int32) (ids []int32, sims []float32) {
	if item < 0 || int(item) >= n.Len() {
		return nil, nil
	}
	lo, hi := n.offsets[item], n.offsets[item+1]
	return n.ids[lo:hi:hi], n.sims[lo:hi:hi]
}

// Len is the number of items the table covers.
func (n *Neighbours) Len() int { return len(n.offsets) - 1 }

// Entries is the total number of neighbour entries in the table.
func (n *Neighbours) Entries() int { return len(n.ids) }

// Scratch is per-request working memory of Recommend. The zero value is
// ready; it grows to the table's item count on first use and is then
// reused without allocating. Not for concurrent use: one per request (a
// sync.Pool of them suits a server).
type Scratch struct {
	// cells is the dense score accumulator with each item's state beside
	// its score (one cache line per random update, not two); touched lists
	// the cells the last Recommend set, which the next one clears.
	cells   []cell
	touched []int32
	heap    []index.Hit
}

const (
	stateFree    = 0
	stateScored  = 1
	stateHistory = 2
)

type cell struct {
	score float32
	state uint32
}

func (sc *Scratch) grow(items int) {
	if len(sc.cells) < items {
		sc.cells = make([]cell, items)
	}
}

// weightAt is weights[i], or 1 when weights is nil or too short.
func weightAt(weights []float32, i int) float32 {
	if i < len(weights) {
		return weights[i]
	}
	return 1
}

// Recommend scores every item reachable from history (item numbers, most
// recent first, with a weight each; weights may be nil for all 1, and a
// missing trailing weight is 1) as the weighted sum of its similarities to
// the history items, and returns the k best that pass keep (nil keeps
// all) and are not in history, best first; ties by item number. History
// items out of range are skipped; a repeated one counts each time. keep is
// called only for items that would enter the result. sc is per-request
// scratch (reuse it; nil allocates); until its next Recommend, sc.Value
// gives the score of any item, returned or not (k <= 0 only scores).
func (n *Neighbours) Recommend(history []int32, weights []float32, k int, keep index.Filter, sc *Scratch) []index.Hit {
	if sc == nil {
		sc = &Scratch{}
	}
	sc.reset()
	if len(history) == 0 {
		return nil
	}
	items := n.Len()
	sc.grow(items)
	// Every entry may touch a new item: size touched once so the inner
	// loop appends without a branch (whether an item is new is a coin flip
	// the branch predictor loses; this loop is most of a request).
	entries := len(history)
	for _, h := range history {
		if h >= 0 && int(h) < items {
			entries += int(n.offsets[h+1] - n.offsets[h])
		}
	}
	if cap(sc.touched) < entries {
		sc.touched = make([]int32, entries)
	}
	cells, touched := sc.cells, sc.touched[:entries]
	nt := 0
	for p, h := range history {
		if h < 0 || int(h) >= items {
			continue
		}
		w := weightAt(weights, p)
		lo, hi := n.offsets[h], n.offsets[h+1]
		ids, sims := n.ids[lo:hi], n.sims[lo:hi:hi]
		for q, j := range ids {
			c := &cells[j]
			touched[nt] = j
			nt += int(1 - c.state) // states are free (0) or scored (1) here
			c.state = stateScored
			c.score += w * sims[q]
		}
	}
	// History goes last, overriding scored: it is excluded, and reset
	// with the rest.
	for _, h := range history {
		if h >= 0 && int(h) < items && cells[h].state != stateHistory {
			if cells[h].state == stateFree {
				touched[nt] = h
				nt++
			}
			cells[h].state = stateHistory
		}
	}
	sc.touched = touched[:nt]
	if k <= 0 {
		return nil
	}
	top := topK(sc.heap[:0], sc.touched, cells, k, keep)
	sc.heap = top[:0]
	out := make([]index.Hit, len(top))
	// The heap keeps the worst at the root: popping fills out from the end.
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = top[0]
		top = popHit(top)
	}
	return out
}

// reset clears what the previous Recommend left: only its touched cells,
// so a request costs its own work, not the catalog's size. The cells
// outlive a table (a pooled Scratch serves the next generation too), so
// every touched id is inside them.
func (sc *Scratch) reset() {
	for _, j := range sc.touched {
		sc.cells[j] = cell{}
	}
	sc.touched = sc.touched[:0]
}

// Value is the score the last Recommend with this scratch gave item,
// whether or not it was returned (filtered, or below the k best): 0 when
// no history item lists it, when it is in the history, or before any
// Recommend.
func (sc *Scratch) Value(item int32) float32 {
	if item < 0 || int(item) >= len(sc.cells) || sc.cells[item].state != stateScored {
		return 0
	}
	return sc.cells[item].score
}

// Score is what Recommend would give item for the same history (0 when no
// history item lists it). For an item in history it is the score
// Recommend would give had it not excluded it.
func (n *Neighbours) Score(history []int32, weights []float32, item int32) float32 {
	var s float32
	for p, h := range history {
		ids, sims := n.Of(h)
		for q, j := range ids {
			if j == item {
				s += weightAt(weights, p) * sims[q]
				break
			}
		}
	}
	return s
}

// worse orders hits for the result: lower score, or equal score and the
// higher item number, is worse.
func worse(a, b index.Hit) bool {
	return a.Score < b.Score || a.Score == b.Score && a.ID > b.ID
}

// topK selects the k best scored touched items passing keep into h, a
// min-heap on worse (the k-th best at the root).
func topK(h []index.Hit, touched []int32, cells []cell, k int, keep index.Filter) []index.Hit {
	for _, j := range touched {
		if cells[j].state != stateScored {
			continue
		}
		c := index.Hit{ID: j, Score: cells[j].score}
		full := len(h) >= k
		if full && !worse(h[0], c) {
			continue
		}
		if keep != nil && !keep(j) {
			continue
		}
		if full {
			h[0] = c
			downHit(h, 0)
		} else {
			h = pushHit(h, c)
		}
	}
	return h
}

func pushHit(h []index.Hit, x index.Hit) []index.Hit {
	h = append(h, x)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !worse(x, h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = x
	return h
}

func downHit(h []index.Hit, i int) {
	x := h[i]
	for {
		m := 2*i + 1
		if m >= len(h) {
			break
		}
		if r := m + 1; r < len(h) && worse(h[r], h[m]) {
			m = r
		}
		if !worse(h[m], x) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = x
}

func popHit(h []index.Hit) []index.Hit {
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	if last > 0 {
		downHit(h, 0)
	}
	return h
}
