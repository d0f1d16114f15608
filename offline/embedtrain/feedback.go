package embedtrain

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/internal/strictjson"
)

// DefaultCoWindow is how close in time two engagements of one user must be
// to make a co-engagement pair: one shopping session, not a user's whole
// history, whose early and late interests need not be related.
const DefaultCoWindow = 30 * time.Minute

// DefaultMaxCoPairsPerUser caps one user's co-engagement pairs, so a few
// heavy users (or bots) do not decide what "related" means for everyone.
const DefaultMaxCoPairsPerUser = 200

// engagement is one positive action on one item.
type engagement struct {
	user, item, query, request string
	at                         time.Time
	id                         string
}

// FeedbackLog collects the events training pairs are made from: search
// impressions (which say what was typed for a request) and engagements
// (clicks, add-to-carts, purchases). Feed it every event of the log in
// order, from eventlog.ReadTopic, eventlog.Replay or ReadEventsFile, then
// ask for pairs. The zero value is not usable; call NewFeedbackLog.
type FeedbackLog struct {
	queries     map[string]string // search request id -> query
	engagements []engagement
	seen        map[string]struct{} // event ids, for duplicates a replay or retry delivered twice
	stats       LogStats
}

// LogStats counts what a FeedbackLog was given.
type LogStats struct {
	Events      int // events passed to Add
	Duplicates  int // dropped because their event id was seen before
	Searches    int // search impressions with a query
	Engagements int // clicks, add-to-carts and purchases
}

// NewFeedbackLog returns an empty log.
func NewFeedbackLog() *FeedbackLog {
	return &FeedbackLog{queries: map[string]string{}, seen: map[string]struct{}{}}
}

// Stats returns the counts so far.
func (l *FeedbackLog) Stats() LogStats { return l.stats }

// Add records ev. Event types that carry no training signal here (dwell,
// recommend impressions) are counted and otherwise ignored.
func (l *FeedbackLog) Add(ev feedback.Event) {
	l.stats.Events++
	if ev.EventID != "" {
		if _, dup := l.seen[ev.EventID]; dup {
			l.stats.Duplicates++
			return
		}
		l.seen[ev.EventID] = struct{}{}
	}
	switch ev.Type {
	case feedback.TypeImpression:
		if ev.Surface != feedback.SurfaceRecommend && ev.RequestID != "" && strings.TrimSpace(ev.Query) != "" {
			l.queries[ev.RequestID] = ev.Query
			l.stats.Searches++
		}
	case feedback.TypeClick, feedback.TypeAddToCart, feedback.TypePurchase:
		l.engagements = append(l.engagements, engagement{user: ev.UserID, item: ev.ItemID,
			query: ev.Query, request: ev.RequestID, at: ev.Timestamp, id: ev.EventID})
		l.stats.Engagements++
	}
}

// PairStats says how many pairs a builder made and why others were not.
type PairStats struct {
	Pairs       int
	NoQuery     int // engagements whose request had no search query (recommendations, unknown request)
	UnknownItem int // items the catalog does not hold (any more)
	Duplicates  int // the same pair from the same user again
	Capped      int // co-engagement pairs over a user's cap
}

// ItemText returns the text an item is embedded from, and false for an
// item the catalog does not hold.
type ItemText func(itemID string) (string, bool)

// SearchPairs pairs each searched query with the text of an item engaged
// with from its results: what the user typed against what they wanted.
// The query comes from the engagement itself when the client sent it, else
// from the search impression of the same request. One user engaging with
// the same item for the same query several times gives one pair, so
// repeated clicks do not outweigh other users.
func (l *FeedbackLog) SearchPairs(text ItemText) ([]Pair, PairStats) {
	var st PairStats
	var pairs []Pair
	seen := map[[3]string]struct{}{}
	for _, e := range l.engagements {
		q := e.query
		if q == "" {
			q = l.queries[e.request]
		}
		q = strings.TrimSpace(q)
		if q == "" {
			st.NoQuery++
			continue
		}
		body, ok := text(e.item)
		if !ok {
			st.UnknownItem++
			continue
		}
		key := [3]string{e.user, strings.ToLower(q), e.item}
		if _, dup := seen[key]; dup {
			st.Duplicates++
			continue
		}
		seen[key] = struct{}{}
		pairs = append(pairs, Pair{A: q, B: body})
	}
	st.Pairs = len(pairs)
	return pairs, st
}

// CoEngagementPairs pairs items one user engaged with in close succession
// (at most window apart; DefaultCoWindow when zero): each engagement is
// paired with the user's next engagement of a different item. Items used
// together are what a recommendation from recent items should find near
// each other. maxPerUser caps a user's pairs (DefaultMaxCoPairsPerUser
// when zero). Users are visited in id order, so the pairs do not depend on
// the order events arrived in.
func (l *FeedbackLog) CoEngagementPairs(text ItemText, window time.Duration, maxPerUser int) ([]Pair, PairStats) {
	if window <= 0 {
		window = DefaultCoWindow
	}
	if maxPerUser <= 0 {
		maxPerUser = DefaultMaxCoPairsPerUser
	}
	byUser := map[string][]engagement{}
	for _, e := range l.engagements {
		byUser[e.user] = append(byUser[e.user], e)
	}
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	slices.Sort(users)

	var st PairStats
	var pairs []Pair
	for _, u := range users {
		es := byUser[u]
		slices.SortStableFunc(es, func(a, b engagement) int {
			return cmp.Or(a.at.Compare(b.at), strings.Compare(a.id, b.id))
		})
		seen := map[[2]string]struct{}{}
		n := 0
		for i := range es {
			j := i + 1
			for j < len(es) && es[j].item == es[i].item {
				j++
			}
			if j == len(es) || es[j].at.Sub(es[i].at) > window {
				continue
			}
			a, b := es[i].item, es[j].item
			key := [2]string{min(a, b), max(a, b)}
			if _, dup := seen[key]; dup {
				st.Duplicates++
				continue
			}
			seen[key] = struct{}{}
			ta, okA := text(a)
			tb, okB := text(b)
			if !okA || !okB {
				st.UnknownItem++
				continue
			}
			if n == maxPerUser {
				st.Capped++
				continue
			}
			n++
			pairs = append(pairs, Pair{A: ta, B: tb})
		}
	}
	st.Pairs = len(pairs)
	return pairs, st
}

// FileStats summarises one ReadEventsFile call.
type FileStats struct {
	Lines   int // non-blank lines
	Events  int // valid events passed on
	Invalid int // lines that are not a valid event, skipped
	// FirstInvalid names the first skipped line and why, so a file in the
	// wrong format is obvious rather than silently empty.
	FirstInvalid string
}

// ReadEventsFile reads a JSON Lines file of feedback events (one event per
// line, the record values of the events topic, e.g. a `kcat -C -e` dump)
// and calls fn for each valid one in file order. Invalid lines are skipped
// and counted, as the topic reader does. Events are validated without the
// ingestion time window: a log of history is old by nature.
func ReadEventsFile(ctx context.Context, path string, fn func(feedback.Event) error) (FileStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileStats{}, fmt.Errorf("read events: %w", err)
	}
	defer f.Close()
	st, err := ReadEvents(ctx, f, fn)
	if err != nil {
		return st, fmt.Errorf("read events %s: %w", path, err)
	}
	return st, nil
}

// ReadEvents is ReadEventsFile over a reader.
func ReadEvents(ctx context.Context, r io.Reader, fn func(feedback.Event) error) (FileStats, error) {
	var st FileStats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), feedback.MaxEventBytes+1)
	line := 0
	for sc.Scan() {
		line++
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		st.Lines++
		ev, err := decodeEvent(b)
		if err != nil {
			st.Invalid++
			if st.FirstInvalid == "" {
				st.FirstInvalid = fmt.Sprintf("line %d: %v", line, err)
			}
			continue
		}
		st.Events++
		if err := fn(ev); err != nil {
			return st, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("line %d: %w", line+1, err)
	}
	return st, nil
}

// decodeEvent parses one line strictly and validates it with the event's
// own time as "now", which applies every rule except the ingestion window.
func decodeEvent(b []byte) (feedback.Event, error) {
	var ev feedback.Event
	if err := strictjson.Decode(b, &ev, ""); err != nil {
		return feedback.Event{}, err
	}
	if ev.Timestamp.IsZero() {
		return feedback.Event{}, errors.New("timestamp: required")
	}
	if err := ev.Validate(ev.Timestamp); err != nil {
		return feedback.Event{}, err
	}
	return ev, nil
}
