package counters

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recsys-dev/recsys/internal/redisd"
)

// TestNativeScripts_MatchLua runs one random sequence of script calls
// (events out of order, replayed offsets, several partitions, damaged
// values) on servers running the Lua and on the in-process server running
// NativeScripts, and wants the same answers and the same data after each.
func TestNativeScripts_MatchLua(t *testing.T) {
	ctx := context.Background()
	type target struct {
		name string
		rdb  *redis.Client
	}
	var luas []target
	if p, err := redisd.Exec(ctx); err == nil {
		t.Cleanup(p.Close)
		luas = append(luas, target{"redis-server", redis.NewClient(&redis.Options{Addr: p.Addr()})})
	} else if !errors.Is(err, redisd.ErrNoRedisServer) {
		t.Fatal(err)
	}
	luas = append(luas, target{"in-process-lua", redis.NewClient(&redis.Options{Addr: startInProcess(t, false).Addr()})})
	native := redis.NewClient(&redis.Options{Addr: startInProcess(t, true).Addr()})
	all := append([]target{{"native", native}}, luas...)
	for _, x := range all {
		t.Cleanup(func() { x.rdb.Close() })
	}

	rng := rand.New(rand.NewPCG(7, 11))
	items := []string{"d:{a}", "d:{b}", "d:{c}"}
	users := [][]string{{"u:{x}", "uo:{x}"}, {"u:{y}", "uo:{y}"}}
	// Values a damaged or hand-edited key might hold.
	damaged := []string{"", "abc", "1 2", "3 4 5000 0:7 junk 1:x 0:9 2:3", "nan inf -5 1:1", "1e3 2E-1 100 07:5"}
	const n = 3000
	for i := range n {
		var (
			script *redis.Script
			keys   []string
			args   []any
		)
		switch r := rng.IntN(20); {
		case r == 0:
			k := items[rng.IntN(len(items))]
			v := damaged[rng.IntN(len(damaged))]
			for _, x := range all {
				if err := x.rdb.Set(ctx, k, v, time.Hour).Err(); err != nil {
					t.Fatal(err)
				}
			}
			continue
		case r < 15:
			script = itemScript
			keys = []string{items[rng.IntN(len(items))]}
			args = []any{3_600_000, 86_400_000}
			// One to four records of a chunk; times jitter backwards as
			// they do across partitions, offsets repeat as re-reads do.
			for range 1 + rng.IntN(4) {
				ts := int64(1_700_000_000_000 + i*1000 - rng.IntN(20_000))
				args = append(args, 1+rng.IntN(2), ts, rng.IntN(3), i-rng.IntN(5))
			}
		default:
			script = userScript
			keys = users[rng.IntN(len(users))]
			args = []any{fmt.Sprintf("item-%d", rng.IntN(10)), 1 + rng.IntN(4), 86_400_000, rng.IntN(2), i - rng.IntN(5)}
		}
		want, wantErr := script.Run(ctx, luas[0].rdb, keys, args...).Result()
		for _, x := range all {
			if x.rdb == luas[0].rdb {
				continue
			}
			got, err := script.Run(ctx, x.rdb, keys, args...).Result()
			if (err != nil) != (wantErr != nil) || got != want {
				t.Fatalf("call %d %v %v: %s answered %v (%v), %s %v (%v)", i, keys, args, x.name, got, err, luas[0].name, want, wantErr)
			}
		}
	}
	want := dump(t, luas[0].rdb)
	if len(want) < len(items) {
		t.Fatalf("only %d keys written", len(want))
	}
	for _, x := range all {
		if x.rdb == luas[0].rdb {
			continue
		}
		if got := dump(t, x.rdb); !maps.Equal(got, want) {
			t.Errorf("%s holds %v\n%s holds %v", x.name, got, luas[0].name, want)
		}
	}
}

// dump reads every key: strings as themselves, lists joined, and whether
// a TTL is set.
func dump(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		typ, _ := rdb.Type(ctx, k).Result()
		var v string
		if typ == "list" {
			l, err := rdb.LRange(ctx, k, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			v = fmt.Sprint(l)
		} else if v, err = rdb.Get(ctx, k).Result(); err != nil {
			t.Fatal(err)
		}
		ttl, _ := rdb.PTTL(ctx, k).Result()
		out[k] = v + " ttl>0=" + strconv.FormatBool(ttl > 0)
	}
	return out
}
