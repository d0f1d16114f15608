package rank

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recsys-dev/recsys/internal/realtime"
)

// Realtime is what the counter updater knows now about one request's
// candidates and user.
type Realtime struct {
	// Items[i] are ids[i]'s counts decayed to the request time; zero for
	// an item with no events yet.
	Items []realtime.Stats
	// History is the user's recent action item ids, most recent first.
	History []string
}

// UseRealtime points the store at the counter updater's keys (its
// key_prefix and half_life). Call it before serving.
func (s *Store) UseRealtime(keyPrefix string, halfLife time.Duration) {
	s.rtPrefix, s.rtHalfLife = keyPrefix, halfLife
}

// HalfLife is the decay of the counts (UseRealtime's halfLife).
func (s *Store) HalfLife() time.Duration { return s.rtHalfLife }

// FetchRealtime reads the decayed counts of ids (when counters) and the
// user's history (when user is not empty) in one pipelined round trip,
// bounded by the fetch timeout. Unparsable values count as no events.
func (s *Store) FetchRealtime(ctx context.Context, now time.Time, user string, ids []string, counters bool) (Realtime, error) {
	if s.rtPrefix == "" {
		return Realtime{}, errors.New("fetch real-time features: the store has no counter key prefix (UseRealtime)")
	}
	if s.fetchTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.fetchTimeout)
		defer cancel()
	}
	pipe := s.client.Pipeline()
	var items func() ([]any, error)
	if counters && len(ids) > 0 {
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = realtime.ItemKey(s.rtPrefix, id)
		}
		items = mget(ctx, s.client, pipe, keys)
	}
	var hist *redis.StringSliceCmd
	if user != "" {
		hist = pipe.LRange(ctx, realtime.UserKey(s.rtPrefix, user), 0, -1)
	}
	if items == nil && hist == nil {
		return Realtime{}, nil
	}
	start := time.Now()
	_, err := pipe.Exec(ctx)
	s.fetchSeconds.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, redis.Nil) {
		return Realtime{}, fmt.Errorf("fetch real-time features: %w", err)
	}
	var out Realtime
	if items != nil {
		vals, err := items()
		if err != nil {
			return Realtime{}, fmt.Errorf("fetch real-time features: %w", err)
		}
		out.Items = make([]realtime.Stats, len(ids))
		for i, v := range vals {
			if str, ok := v.(string); ok {
				if st, ok := realtime.Parse(str); ok {
					out.Items[i] = st.DecayTo(now, s.rtHalfLife)
				}
			}
		}
	}
	if hist != nil {
		out.History = hist.Val()
	}
	return out, nil
}
