package counters

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/realtime"
)

// A chunk is how many records one round of pipelines covers: large
// enough to amortise round trips, small enough that one Exec stays well
// inside the client's read timeout on a busy server. It starts at
// maxChunk and adapts (Updater.chunk).
const (
	maxChunk = 256
	minChunk = 8
)

// The pause after a failed batch starts at retryBase and doubles with
// each failure in a row, up to retryMax.
const (
	retryBase = 250 * time.Millisecond
	retryMax  = 30 * time.Second
)

// apply counts every valid event of recs, chunk by chunk, and says how
// many leading records are applied: on an error, the chunks before the
// failing one are done, and re-reading them would count them again.
func (c *Updater) apply(ctx context.Context, recs []*kgo.Record) (int, error) {
	n := int(c.chunk.Load())
	if n <= 0 {
		n = maxChunk
	}
	for start := 0; start < len(recs); start += n {
		if err := c.applyChunk(ctx, recs[start:min(start+n, len(recs))]); err != nil {
			return start, err
		}
	}
	return len(recs), nil
}

// refused reports whether err is Redis answering a command with an error
// (a wrong type, a script error): the records are at fault, not the
// connection. Timeouts, refused connections and closed clients are not.
func refused(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil)
}

// work is one decoded record on its way into Redis.
type work struct {
	rec  *kgo.Record
	ev   feedback.Event
	mark string // "<partition>:<offset>"
	set  *redis.BoolCmd
	get  *redis.StringCmd
	cmds []*redis.Cmd // the user scripts queued for it
	// groups are its places in the chunk's item scripts.
	groups []group
}

// group is one record's place in an item script call: the call and the
// group's index in its reply.
type group struct {
	cmd *redis.Cmd
	at  int
}

func (c *Updater) applyChunk(ctx context.Context, recs []*kgo.Record) error {
	p := c.ccfg.KeyPrefix
	var (
		ws      []*work
		invalid int
		dead    []eventlog.DeadLetter
	)
	for _, r := range recs {
		ev, err := feedback.DecodeStoredWithoutFeatures(r.Value)
		if err != nil || ev.EventID == "" {
			invalid++
			continue
		}
		if reason := c.unknown(&ev); reason != "" {
			dead = append(dead, eventlog.DeadLetter{Source: "counters", Index: -1, Field: "item_id", Reason: reason,
				Payload: string(r.Value), Key: string(r.Key)})
			continue
		}
		ws = append(ws, &work{rec: r, ev: ev, mark: strconv.Itoa(int(r.Partition)) + ":" + strconv.FormatInt(r.Offset, 10)})
	}
	if len(dead) > 0 {
		if err := c.deadLetter(ctx, dead); err != nil {
			return err
		}
	}
	// Marks: new, a re-read of the record that set it, or a duplicate. A
	// late event's copies may come hours apart, so its mark lasts longer.
	now := c.now()
	var late int64
	if err := c.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, w := range ws {
			ttl := c.ccfg.DedupeWindow
			if now.Sub(w.ev.Timestamp) > ttl {
				ttl = c.ccfg.LateWindow
				late++
			}
			w.set = pipe.SetNX(ctx, realtime.SeenKey(p, w.ev.EventID), w.mark, ttl)
		}
	}); err != nil {
		return fmt.Errorf("update counters: dedupe marks: %w", err)
	}
	var again []*work
	for _, w := range ws {
		if !w.set.Val() {
			again = append(again, w)
		}
	}
	if len(again) > 0 {
		if err := c.pipelined(ctx, func(pipe redis.Pipeliner) {
			for _, w := range again {
				w.get = pipe.Get(ctx, realtime.SeenKey(p, w.ev.EventID))
			}
		}); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("update counters: dedupe marks: %w", err)
		}
	}
	var apply []*work
	var dups int64
	for _, w := range ws {
		if w.get != nil && w.get.Val() != w.mark {
			dups++
			continue
		}
		apply = append(apply, w)
	}
	hl := c.ccfg.HalfLife.Milliseconds()
	itemTTL := max(10*hl, (24 * time.Hour).Milliseconds())
	if err := c.pipelined(ctx, func(pipe redis.Pipeliner) { c.queue(ctx, pipe, apply, hl, itemTTL) }); err != nil {
		return fmt.Errorf("update counters: %w", err)
	}
	// Counted: a new event, or a re-read that completed what a crash cut
	// short. A re-read that found everything applied counts as neither.
	var counted, rereads int64
	for _, w := range apply {
		changed := w.set.Val()
		for _, cmd := range w.cmds {
			n, _ := cmd.Int64()
			changed = changed || n == 1
		}
		for _, g := range w.groups {
			r, _ := g.cmd.Text()
			changed = changed || g.at < len(r) && r[g.at] == '1'
		}
		if changed {
			counted++
		} else {
			rereads++
		}
	}
	c.mu.Lock()
	c.counted += counted
	c.dups += dups
	c.mu.Unlock()
	c.events.WithLabelValues(c.ccfg.Group, "counted").Add(float64(counted))
	c.events.WithLabelValues(c.ccfg.Group, "duplicate").Add(float64(dups))
	c.events.WithLabelValues(c.ccfg.Group, "reread").Add(float64(rereads))
	c.events.WithLabelValues(c.ccfg.Group, "invalid").Add(float64(invalid))
	c.events.WithLabelValues(c.ccfg.Group, "unknown_item").Add(float64(len(dead)))
	c.lateMarks.WithLabelValues(c.ccfg.Group).Add(float64(late))
	return nil
}

// queue adds the scripts of ws to pipe: one item script per item touched,
// its groups in record order, and for actions the user's history. Dwell
// events are remembered (marked) but change nothing: no feature reads them
// yet.
func (c *Updater) queue(ctx context.Context, pipe redis.Pipeliner, ws []*work, hl, itemTTL int64) {
	p := c.ccfg.KeyPrefix
	type item struct {
		args []any
		ws   []*work // the record of each group
	}
	// The items in one array and their argument lists sized for one
	// group (most items appear once in a chunk): two allocations fewer per
	// item than a pointer each and lists grown from two.
	n := 0
	for _, w := range ws {
		n += len(w.ev.Items) + 1
	}
	items := make([]item, 0, n)
	byID := make(map[string]int, n)
	// Arguments are boxed once per call or per record, not per group: an
	// impression's ten items share its time, partition and offset.
	hlArg, ttlArg := any(hl), any(itemTTL)
	add := func(w *work, id string, field int, t, part, off any) {
		i, ok := byID[id]
		if !ok {
			i = len(items)
			byID[id] = i
			// The whole EVALSHA, so the command is built on this slice
			// (EvalSha would copy it into one of its own, and box the key).
			args := make([]any, 6, 10)
			args[0], args[1], args[2], args[3], args[4], args[5] = "evalsha", itemSHA, 1, realtime.ItemKey(p, id), hlArg, ttlArg
			items = append(items, item{args: args})
		}
		it := &items[i]
		it.args = append(it.args, field, t, part, off)
		it.ws = append(it.ws, w)
	}
	for _, w := range ws {
		ev := &w.ev
		w.cmds, w.groups = w.cmds[:0], w.groups[:0] // a retried pipeline queues anew
		part := strconv.Itoa(int(w.rec.Partition))
		t, partArg, offArg := any(ev.Timestamp.UnixMilli()), any(part), any(w.rec.Offset)
		switch ev.Type {
		case feedback.TypeImpression:
			for _, it := range ev.Items {
				if c.known == nil || c.known(it.ItemID) {
					add(w, it.ItemID, 1, t, partArg, offArg)
				}
			}
		case feedback.TypeClick:
			add(w, ev.ItemID, 2, t, partArg, offArg)
		}
		switch ev.Type {
		case feedback.TypeClick, feedback.TypeAddToCart, feedback.TypePurchase:
			if ev.UserID != "" {
				w.cmds = append(w.cmds, userScript.EvalSha(ctx, pipe, []string{realtime.UserKey(p, ev.UserID), realtime.UserOffsetKey(p, ev.UserID)},
					ev.ItemID, c.ccfg.HistoryLength, c.ccfg.HistoryTTL.Milliseconds(), part, w.rec.Offset))
			}
		}
	}
	for i := range items {
		it := &items[i]
		cmd := redis.NewCmd(ctx, it.args...)
		cmd.SetFirstKeyPos(3) // the item key: a cluster routes by it
		_ = pipe.Process(ctx, cmd)
		for at, w := range it.ws {
			w.groups = append(w.groups, group{cmd: cmd, at: at})
		}
	}
}

// pipelined runs fill's commands in one pipeline. The scripts go by SHA;
// when a server does not know them (a fresh or restarted Redis) they are
// loaded and the pipeline runs again, which the offsets make harmless.
func (c *Updater) pipelined(ctx context.Context, fill func(redis.Pipeliner)) error {
	for attempt := 0; ; attempt++ {
		pipe := c.rdb.Pipeline()
		fill(pipe)
		if pipe.Len() == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		if err == nil || attempt > 0 || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return err
		}
		for _, s := range []*redis.Script{itemScript, userScript} {
			if err := s.Load(ctx, c.rdb).Err(); err != nil {
				return err
			}
		}
	}
}
