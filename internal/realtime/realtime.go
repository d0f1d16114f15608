// Package realtime is the Redis layout of the real-time ranking state: the
// counter updater (counters.Updater) writes it from the event topic and the
// feature fetch (rank.Store) reads it for every request.
//
//   - <prefix>:d:{<item>} holds the item's time-decayed impression and click
//     counts as the text "<impressions> <clicks> <reference unix ms>"; both
//     counts halve every half-life. The updater appends "<partition>:<offset>"
//     tokens: the last record of each partition applied to it.
//   - <prefix>:u:{<user>} is a list of the item ids the user acted on (click,
//     add to cart, purchase), most recent first, trimmed to a fixed length;
//     <prefix>:uo:{<user>} is the last record applied to it.
//   - <prefix>:seen:<event id> marks an event applied (or being applied) by
//     the record "<partition>:<offset>", for the dedupe window.
//
// The braces are Redis Cluster hash tags: every key one updater script
// touches hashes to one slot, so the scripts run on a cluster too. Every key
// expires when nothing updates it, so Redis holds only active items, users
// and recent events.
package realtime

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// ItemKey is the key of item's decayed counts.
func ItemKey(prefix, item string) string { return prefix + ":d:{" + item + "}" }

// UserKey is the key of user's recent actions.
func UserKey(prefix, user string) string { return prefix + ":u:{" + user + "}" }

// UserOffsetKey is the key of the last record applied to user's actions;
// it shares UserKey's hash slot.
func UserOffsetKey(prefix, user string) string { return prefix + ":uo:{" + user + "}" }

// SeenKey is the dedupe mark of an event.
func SeenKey(prefix, eventID string) string { return prefix + ":seen:" + eventID }

// Stats are an item's decayed counts, valued at At.
type Stats struct {
	Impressions float64
	Clicks      float64
	At          time.Time
}

// Parse reads a value the updater wrote; ok is false for anything else.
// Tokens after the third (the updater's applied offsets) are not read.
func Parse(val string) (s Stats, ok bool) {
	var f [3]string // the first three tokens, without a slice of them all
	n := 0
	for tok := range strings.FieldsSeq(val) {
		f[n] = tok
		if n++; n == len(f) {
			break
		}
	}
	if n < len(f) {
		return Stats{}, false
	}
	imp, err1 := strconv.ParseFloat(f[0], 64)
	clk, err2 := strconv.ParseFloat(f[1], 64)
	ms, err3 := strconv.ParseFloat(f[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || !(imp >= 0) || !(clk >= 0) || math.IsInf(imp+clk+ms, 0) || math.IsNaN(ms) {
		return Stats{}, false
	}
	return Stats{Impressions: imp, Clicks: clk, At: time.UnixMilli(int64(ms))}, true
}

// Format writes s as the updater does (for tests and tools).
func Format(s Stats) string {
	return strconv.FormatFloat(s.Impressions, 'g', 9, 64) + " " + strconv.FormatFloat(s.Clicks, 'g', 9, 64) + " " +
		strconv.FormatInt(s.At.UnixMilli(), 10)
}

// DecayTo values s at now: counts fall by half per halfLife. A reference
// time after now (clock skew between hosts) is taken as now.
func (s Stats) DecayTo(now time.Time, halfLife time.Duration) Stats {
	if halfLife <= 0 || !now.After(s.At) {
		return s
	}
	f := math.Exp2(-float64(now.Sub(s.At)) / float64(halfLife))
	return Stats{Impressions: s.Impressions * f, Clicks: s.Clicks * f, At: now}
}
