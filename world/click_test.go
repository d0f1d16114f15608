package world

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/catalog"
)

func TestWorld_ClickProb(t *testing.T) {
	w := newWorld(t, 3000, 300, 11)
	items := make([]catalog.Item, 3000)
	for i := range items {
		items[i] = w.Item(i)
	}
	users := w.Users()

	t.Run("range and position monotonicity", func(t *testing.T) {
		for ui := range 50 {
			u := &users[ui]
			for ii := range 200 {
				it := &items[ii]
				prev := 2.0
				for pos := range 20 {
					p := w.ClickProb(u, it, pos)
					if p < 0 || p > 1 {
						t.Fatalf("ClickProb = %v outside [0,1]", p)
					}
					if p > prev {
						t.Fatalf("ClickProb rises from %v to %v at position %d", prev, p, pos)
					}
					prev = p
				}
				if w.ClickProb(u, it, 10) >= w.ClickProb(u, it, 0) {
					t.Fatalf("position 10 is not below position 0 for %s/%s", u.ID, it.ID)
				}
			}
		}
	})

	t.Run("higher utility gives more clicks", func(t *testing.T) {
		type pair struct{ util, p float64 }
		var ps []pair
		for ui := range 50 {
			for ii := range 200 {
				ps = append(ps, pair{w.Utility(&users[ui], &items[ii]), w.ClickProb(&users[ui], &items[ii], 3)})
			}
		}
		slices.SortFunc(ps, func(a, b pair) int {
			if a.util < b.util {
				return -1
			}
			if a.util > b.util {
				return 1
			}
			return 0
		})
		for i := 1; i < len(ps); i++ {
			if ps[i].p < ps[i-1].p {
				t.Fatalf("utility %v clicks %v, but lower utility %v clicks %v", ps[i].util, ps[i].p, ps[i-1].util, ps[i-1].p)
			}
		}
		if ps[0].p >= ps[len(ps)-1].p {
			t.Fatal("click probability is flat in utility")
		}
	})

	t.Run("simulated clicks favour preferred categories", func(t *testing.T) {
		// The hidden preferences must show in behaviour, otherwise nothing
		// can be learned from the feedback loop.
		rng := rand.New(rand.NewPCG(1, 2))
		var inClicks, inShown, outClicks, outShown float64
		for ui := range users {
			u := &users[ui]
			for range 20 {
				it := &items[rng.IntN(len(items))]
				click := rng.Float64() < w.ClickProb(u, it, 0)
				if u.Categories[it.Category] > 0 {
					inShown++
					if click {
						inClicks++
					}
				} else {
					outShown++
					if click {
						outClicks++
					}
				}
			}
		}
		in, out := inClicks/inShown, outClicks/outShown
		if in < 3*out {
			t.Errorf("CTR in preferred categories %.3f, elsewhere %.3f: want at least 3x", in, out)
		}
	})

	t.Run("items above the user's age are not clicked", func(t *testing.T) {
		kid := &User{ID: "kid", Age: 6, Categories: map[string]float64{"heavy-metal": 1}, PriceLo: 0.1, PriceHi: 10}
		adult := &User{ID: "adult", Age: 30, Categories: map[string]float64{"heavy-metal": 1}, PriceLo: 0.1, PriceHi: 10}
		for ii := range items {
			it := &items[ii]
			if it.Category != "heavy-metal" {
				continue
			}
			if p := w.ClickProb(kid, it, 0); p > 1e-4 {
				t.Fatalf("a 6-year-old clicks %s (rated %d) with p=%v", it.ID, it.AgeRating, p)
			}
			if it.Available && w.ClickProb(adult, it, 0) < 0.1 {
				t.Fatalf("an adult metal fan clicks %s with only p=%v", it.ID, w.ClickProb(adult, it, 0))
			}
		}
	})
}

func TestExamination(t *testing.T) {
	if Examination(0) != 1 || Examination(-3) != 1 {
		t.Errorf("top examination = %v, %v; want 1", Examination(0), Examination(-3))
	}
	if got := Examination(1); got != 0.5 {
		t.Errorf("Examination(1) = %v, want 0.5 with ExamDecay 1", got)
	}
}

func TestWorld_Query(t *testing.T) {
	w := newWorld(t, 4000, 200, 21)
	items := make([]catalog.Item, 4000)
	for i := range items {
		items[i] = w.Item(i)
	}
	owner := map[string]string{} // word -> category, for words used by one category only
	shared := map[string]bool{}
	for _, name := range Categories() {
		for _, word := range Vocabulary(name) {
			if o, ok := owner[word]; ok && o != name {
				shared[word] = true
			}
			owner[word] = name
		}
	}

	t.Run("words come from a preferred category", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 5))
		for ui := range 200 {
			u := w.User(ui)
			q := w.Query(&u, rng)
			words := strings.Fields(q)
			if len(words) < 2 || len(words) > 4 {
				t.Fatalf("query %q has %d words", q, len(words))
			}
			cat := ""
			for _, word := range words {
				if !shared[word] && owner[word] != "" {
					cat = owner[word]
				}
			}
			if u.Categories[cat] == 0 {
				t.Fatalf("query %q (category %q) is not about one of %s's categories %v", q, cat, u.ID, u.Categories)
			}
			for _, word := range words {
				if !slices.Contains(Vocabulary(cat), word) {
					t.Fatalf("query %q mixes in %q from outside %s", q, word, cat)
				}
			}
		}
	})

	t.Run("same rng seed gives the same queries", func(t *testing.T) {
		u := w.User(3)
		a, b := rand.New(rand.NewPCG(9, 9)), rand.New(rand.NewPCG(9, 9))
		for range 20 {
			if qa, qb := w.Query(&u, a), w.Query(&u, b); qa != qb {
				t.Fatalf("%q != %q", qa, qb)
			}
		}
	})

	t.Run("lexical matching finds the query's category", func(t *testing.T) {
		// A crude bag-of-words retriever stands in for the real one: if
		// it cannot find the category, no learned model will either.
		rng := rand.New(rand.NewPCG(6, 6))
		hits, total := 0, 0
		for ui := range 100 {
			u := w.User(ui)
			q := w.Query(&u, rng)
			cat := ""
			for _, word := range strings.Fields(q) {
				if !shared[word] {
					cat = owner[word]
				}
			}
			type scored struct {
				score int
				cat   string
			}
			var top []scored
			for i := range items {
				text := " " + strings.ToLower(items[i].Text()) + " "
				s := 0
				for _, word := range strings.Fields(q) {
					if strings.Contains(text, " "+word+" ") || strings.Contains(text, " "+word+".") || strings.Contains(text, " "+word+",") {
						s++
					}
				}
				if s > 0 {
					top = append(top, scored{s, items[i].Category})
				}
			}
			slices.SortStableFunc(top, func(a, b scored) int { return b.score - a.score })
			for _, s := range top[:min(10, len(top))] {
				total++
				if s.cat == cat {
					hits++
				}
			}
		}
		if frac := float64(hits) / float64(total); frac < 0.95 {
			t.Errorf("%.2f of lexical top-10 results are in the query's category, want >= 0.95", frac)
		}
	})
}
