package rules

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		expr string
		want class
	}{
		{"item.available", classItem},
		{`item.category == "x" && item.price < 10`, classItem},
		{`any(item.tags, # == "explicit")`, classItem},
		{`lower(item.title) contains "wine"`, classItem},
		{`item["brand"] == "b"`, classItem},
		{"true", classItem},
		{childRule, classAge},
		{"user.age == 0 || item.age_rating <= user.age", classAge},
		{`user.id == "u1" || item.available`, classRequest},
		{`query contains "kids"`, classRequest},
		{"item.age_days < 30", classRequest},
		{`item["age_days"] < 30`, classRequest},
		{"now().Year() > 2000 && item.available", classRequest},
		{`date("2020-01-01") < now()`, classRequest},
		{"let x = item.price; x < 10", classRequest},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := compile(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := classify(p); got != tt.want {
				t.Errorf("class %d, want %d", got, tt.want)
			}
		})
	}
}

// testCatalog is n items with varied fields for the filters below.
func testCatalog(n int) []catalog.Item {
	rng := rand.New(rand.NewPCG(3, 5))
	cats := []string{"jazz", "heavy-metal", "wine", ""}
	items := make([]catalog.Item, n)
	for i := range items {
		items[i] = catalog.Item{
			ID:         fmt.Sprintf("i%d", i),
			Category:   cats[rng.IntN(len(cats))],
			Available:  rng.IntN(5) != 0,
			AgeRating:  []int{0, 7, 12, 16, 18}[rng.IntN(5)],
			Price:      float64(rng.IntN(100)),
			Popularity: rng.Float64() * 20,
			CreatedAt:  now.Add(-time.Duration(rng.IntN(5000)) * 24 * time.Hour),
		}
		if rng.IntN(3) == 0 {
			items[i].Tags = []string{"explicit"}
		}
	}
	return items
}

// TestBound_MatchesSet: remembered verdicts change nothing. Every request
// (users of many ages, queries, the clock moving) gets from Bound.Keep what
// evaluating every rule (Set.Keep) gives, on first sight of an item and
// after, from many goroutines at once.
func TestBound_MatchesSet(t *testing.T) {
	// The item-only rules must not depend on time for a verdict taken at
	// one time to hold at another: they do not (classify says so).
	s := mustCompile(t, Config{Filters: []FilterRule{
		{Name: "available", Expr: "item.available"},
		{Name: "child-no-metal", Expr: childRule},
		{Name: "age-rating", Expr: "user.age == 0 || item.age_rating <= user.age"},
		{Name: "no-explicit-for-query-kids", Expr: `!(query contains "kids" && "explicit" in item.tags)`},
		{Name: "fresh-or-popular", Expr: "item.age_days < 3650 || item.popularity > 10"},
		{Name: "second-tag", Expr: `len(item.tags) == 0 || item.tags[0] != "explicit" || item.price < 90`},
	}})
	items := testCatalog(2000)
	b := s.Bind(items)
	if i, a, r := b.Classes(); i != 2 || a != 2 || r != 2 {
		t.Fatalf("classes item %d, age %d, request %d; want 2 each", i, a, r)
	}
	verdicts := make([]*Verdicts, len(items))
	for i := range items {
		verdicts[i] = b.Verdicts(&items[i], NewEnv("", 0, "", now))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 20 {
				age := []int{0, 5, 7, 12, 16, 18, 151, -1}[rng.IntN(8)]
				q := []string{"", "songs for kids", "wine"}[rng.IntN(3)]
				at := now.Add(time.Duration(rng.IntN(2000)) * 24 * time.Hour)
				env, ref := NewEnv("u", age, q, at), NewEnv("u", age, q, at)
				for id := range items {
					ref.SetItem(&items[id])
					want := s.Keep(ref)
					if got := b.Keep(int32(id), env); got != want {
						errs <- fmt.Errorf("item %d age %d query %q: Bound %v, Set %v", id, age, q, got, want)
						return
					}
					// The paths for an item changed since the bind:
					// without remembered verdicts, and with them (shared
					// by the goroutines, as a live catalog's are).
					it := &items[id]
					if got := b.KeepChanged(it, nil, env); got != want {
						errs <- fmt.Errorf("item %d age %d query %q: KeepChanged without verdicts %v, Set %v", id, age, q, got, want)
						return
					}
					if got := b.KeepChanged(it, verdicts[id], env); got != want {
						errs <- fmt.Errorf("item %d age %d query %q: KeepChanged %v, Set %v", id, age, q, got, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBound_EvaluatesOncePerItem: an item-only rule runs once per item
// however many requests ask, seen through its run-time errors; a
// per-request rule runs every time.
func TestBound_EvaluatesOncePerItem(t *testing.T) {
	items := []catalog.Item{{Tags: []string{"a"}}, {Tags: []string{"a", "b"}}, {}}
	for _, tt := range []struct {
		expr string
		want uint64
	}{
		{`item.tags[1] != "x"`, 2},                 // items 0 and 2 fail, once each
		{`user.age < 0 || item.tags[1] != "x"`, 4}, // once per item and age: two ages
		{`query == "" && item.tags[1] != "x"`, 20}, // every call
	} {
		s := mustCompile(t, Config{Filters: []FilterRule{{Name: "r", Expr: tt.expr}}})
		b := s.Bind(items)
		for i := range 10 {
			env := NewEnv("", 20+i%2, "", now)
			for id := range items {
				if b.Keep(int32(id), env) != (id == 1) {
					t.Fatalf("%s: item %d kept %v", tt.expr, id, id != 1)
				}
			}
		}
		if got := s.RuntimeErrors(); got != tt.want {
			t.Errorf("%s: %d run-time errors over 10 requests, want %d", tt.expr, got, tt.want)
		}
	}
	var nilSet *Set
	if b := nilSet.Bind(items); !b.Keep(0, NewEnv("", 0, "", now)) || b.PerRequest() {
		t.Error("a nil set's Bound must keep everything and evaluate nothing")
	}
}

func BenchmarkBound_Keep(b *testing.B) {
	s, err := Compile(Config{Filters: []FilterRule{
		{Name: "available", Expr: "item.available"},
		{Name: "age-rating", Expr: "user.age == 0 || item.age_rating <= user.age"},
		{Name: "child-no-metal", Expr: childRule},
	}})
	if err != nil {
		b.Fatal(err)
	}
	items := testCatalog(10000)
	env := NewEnv("u", 12, "", now)
	b.Run("set", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			env.SetItem(&items[i%len(items)])
			s.Keep(env)
		}
	})
	bound := s.Bind(items)
	b.Run("bound", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			bound.Keep(int32(i%len(items)), env)
		}
	})
}
