package rules

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/catalog"
)

// applyItems are scored 7 down to 1 in this order.
var applyItems = []catalog.Item{
	{ID: "a1", Brand: "acme", Category: "rock"},
	{ID: "b1", Brand: "bolt", Category: "rock"},
	{ID: "a2", Brand: "acme", Category: "jazz"},
	{ID: "a3", Brand: "acme", Category: "rock"},
	{ID: "n1", Category: "rock"},
	{ID: "b2", Brand: "bolt", Category: "jazz"},
	{ID: "n2", Category: "rock"},
}

// freshCands are applyItems with scores 7..1, handed over shuffled: Apply
// must sort them itself.
func freshCands() []Candidate {
	c := make([]Candidate, len(applyItems))
	for i := range applyItems {
		c[i] = Candidate{Item: &applyItems[i], Score: float32(len(applyItems) - i), Ref: i}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	return c
}

func dropIDs(ds []Drop) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Item.ID + ":" + d.Rule
	}
	slices.Sort(out)
	return out
}

// TestSet_Apply is the table of every business rule action.
func TestSet_Apply(t *testing.T) {
	tests := []struct {
		name    string
		rules   []BusinessRule
		k       int
		query   string
		recent  []string
		locked  string
		want    []string
		scores  map[string]float32 // final scores that must hold
		dropped []string           // item:rule, sorted
		fired   map[string][]string
	}{
		{name: "no rules: score order", k: 7, want: []string{"a1", "b1", "a2", "a3", "n1", "b2", "n2"}},
		{name: "k shortens", k: 3, want: []string{"a1", "b1", "a2"}},
		{
			name:  "boost amount",
			rules: []BusinessRule{{Name: "bolt-up", When: `item.brand == "bolt"`, Action: ActionBoost, Amount: 10}},
			k:     7, want: []string{"b1", "b2", "a1", "a2", "a3", "n1", "n2"},
			scores: map[string]float32{"b1": 16, "b2": 12, "a1": 7},
			fired:  map[string][]string{"b1": {"bolt-up"}, "a1": nil},
		},
		{
			// lowest score 1: a2 1+4*3 = 13, b2 1+1*3 = 4 (ties a3 at 4;
			// a3 was retrieved first).
			name:  "boost factor scales the distance above the lowest",
			rules: []BusinessRule{{Name: "jazz-x3", When: `item.category == "jazz"`, Action: ActionBoost, Factor: 3}},
			k:     7, want: []string{"a2", "a1", "b1", "a3", "b2", "n1", "n2"},
			scores: map[string]float32{"a2": 13, "b2": 4},
		},
		{
			name:  "bury amount",
			rules: []BusinessRule{{Name: "acme-down", When: `item.brand == "acme"`, Action: ActionBury, Amount: 5}},
			k:     7, want: []string{"b1", "n1", "a1", "b2", "n2", "a2", "a3"},
			scores: map[string]float32{"a1": 2, "a3": -1},
		},
		{
			name:  "bury factor",
			rules: []BusinessRule{{Name: "rock-half", When: `item.category == "rock"`, Action: ActionBury, Factor: 0.5}},
			k:     7, want: []string{"a2", "a1", "b1", "a3", "n1", "b2", "n2"},
			scores: map[string]float32{"a1": 4, "b1": 3.5, "n2": 1},
		},
		{
			name:  "hide what the user just had",
			rules: []BusinessRule{{Name: "seen", When: `item.id in user.recent`, Action: ActionHide}},
			k:     7, recent: []string{"a1", "b2"},
			want:    []string{"b1", "a2", "a3", "n1", "n2"},
			dropped: []string{"a1:seen", "b2:seen"},
		},
		{
			name:  "cap per brand backfills in score order",
			rules: []BusinessRule{{Name: "one-per-brand", Action: ActionCap, By: ByBrand, Max: 1}},
			k:     4, want: []string{"a1", "b1", "n1", "n2"},
			// b2 was skipped too, but at the 6th place it would not have
			// shown anyway.
			dropped: []string{"a2:one-per-brand", "a3:one-per-brand"},
		},
		{
			name:  "cap relaxed only when nothing within it is left",
			rules: []BusinessRule{{Name: "one-per-brand", Action: ActionCap, By: ByBrand, Max: 1}},
			k:     6, want: []string{"a1", "b1", "n1", "n2", "a2", "a3"},
			dropped: []string{"b2:one-per-brand"},
			fired:   map[string][]string{"a2": {"one-per-brand"}, "a3": {"one-per-brand"}, "n1": nil},
		},
		{
			name:  "cap per category with a condition",
			rules: []BusinessRule{{Name: "rock-two", When: `item.category == "rock"`, Action: ActionCap, By: ByCategory, Max: 2}},
			k:     4, want: []string{"a1", "b1", "a2", "b2"},
			dropped: []string{"a3:rock-two"},
		},
		{
			name: "boost then two caps",
			rules: []BusinessRule{
				{Name: "n-up", When: `item.brand == ""`, Action: ActionBoost, Amount: 20},
				{Name: "brand-two", Action: ActionCap, By: ByBrand, Max: 2},
				{Name: "rock-three", Action: ActionCap, By: ByCategory, Max: 3},
			},
			// n1 n2 a1 fill rock, so b1 is over it; a2 b2 are jazz; a3 is
			// over both (acme's first), but 6th it would not have shown.
			k: 5, want: []string{"n1", "n2", "a1", "a2", "b2"},
			dropped: []string{"b1:rock-three"},
		},
		{
			name:  "pin when the query matches",
			rules: []BusinessRule{{Name: "promo", When: `query == "promo"`, Action: ActionPin, Items: []string{"n2", "b2"}, Position: 2}},
			k:     4, query: "promo", want: []string{"a1", "n2", "b2", "b1"},
			dropped: []string{"a2:promo", "a3:promo"},
			fired:   map[string][]string{"n2": {"promo"}, "a1": nil},
		},
		{
			name:  "pin does nothing for another query",
			rules: []BusinessRule{{Name: "promo", When: `query == "promo"`, Action: ActionPin, Items: []string{"n2"}, Position: 1}},
			k:     3, query: "jazz", want: []string{"a1", "b1", "a2"},
		},
		{
			name:  "explore slot takes the best item not shown",
			rules: []BusinessRule{{Name: "unbranded", When: `item.brand == ""`, Action: ActionExplore, Position: 2}},
			k:     3, want: []string{"a1", "n1", "b1"},
			dropped: []string{"a2:unbranded"},
		},
		{
			name:  "locked first whatever the rules",
			rules: []BusinessRule{{Name: "n-hidden", When: `item.brand == ""`, Action: ActionHide}},
			k:     3, locked: "n2", want: []string{"n2", "a1", "b1"},
			dropped: []string{"n1:n-hidden"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustCompile(t, Config{Business: tt.rules})
			cands := freshCands()
			for i := range cands {
				cands[i].Locked = cands[i].Item.ID == tt.locked
			}
			env := NewEnv("u", 0, tt.query, now)
			env.User.Recent = tt.recent
			out := s.Apply(cands, env, tt.k)
			if got := ids(out.Ranked); !slices.Equal(got, tt.want) {
				t.Fatalf("order = %v, want %v", got, tt.want)
			}
			if got := dropIDs(out.Dropped); !slices.Equal(got, tt.dropped) && (len(got) > 0 || len(tt.dropped) > 0) {
				t.Fatalf("dropped = %v, want %v", got, tt.dropped)
			}
			for _, c := range out.Ranked {
				if &applyItems[c.Ref] != c.Item {
					t.Fatalf("Ref %d no longer points at %s", c.Ref, c.Item.ID)
				}
				if want := float32(len(applyItems) - c.Ref); c.Base != want || c.BasePos != c.Ref {
					t.Fatalf("%s: base %v at %d, want %v at %d", c.Item.ID, c.Base, c.BasePos, want, c.Ref)
				}
				if want, ok := tt.scores[c.Item.ID]; ok && c.Score != want {
					t.Errorf("%s scored %v, want %v", c.Item.ID, c.Score, want)
				}
				if want, ok := tt.fired[c.Item.ID]; ok && !slices.Equal(c.Fired(), want) {
					t.Errorf("%s fired %v, want %v", c.Item.ID, c.Fired(), want)
				}
			}
		})
	}
}

// TestSet_ApplyEffects pins what the trace says a rule did.
func TestSet_ApplyEffects(t *testing.T) {
	s := mustCompile(t, Config{Business: []BusinessRule{
		{Name: "n2-up", When: `item.id == "n2"`, Action: ActionBoost, Amount: 5.5},
		{Name: "promo", Action: ActionPin, Items: []string{"b2"}, Position: 1},
	}})
	out := s.Apply(freshCands(), NewEnv("u", 0, "", now), 3)
	if got := ids(out.Ranked); !slices.Equal(got, []string{"b2", "a1", "n2"}) {
		t.Fatalf("order = %v", got)
	}
	// n2: 1 + 5.5 = 6.5, from 7th (6) to 2nd (1) by score; b2 pinned
	// from 6th by score (5) to 1st.
	want := map[string]Effect{
		"n2": {Rule: "n2-up", Action: ActionBoost, ScoreBefore: 1, ScoreAfter: 6.5, PosBefore: 6, PosAfter: 1},
		"b2": {Rule: "promo", Action: ActionPin, ScoreBefore: 2, ScoreAfter: 2, PosBefore: 6, PosAfter: 0, Note: "pinned at 1"},
	}
	for _, c := range out.Ranked {
		w, ok := want[c.Item.ID]
		switch {
		case !ok && len(c.Effects) > 0:
			t.Errorf("%s: effects %+v, want none", c.Item.ID, c.Effects)
		case ok && (len(c.Effects) != 1 || c.Effects[0] != w):
			t.Errorf("%s: effects %+v, want %+v", c.Item.ID, c.Effects, w)
		}
	}
	if got := dropIDs(out.Dropped); !slices.Equal(got, []string{"b1:promo"}) {
		t.Fatalf("dropped %v", got)
	}
}

// TestSet_ApplyDiversity checks maximal marginal relevance: a near
// duplicate of the first item waits behind a weaker but different one,
// and lambda 1 is score order.
func TestSet_ApplyDiversity(t *testing.T) {
	items := []catalog.Item{{ID: "x1"}, {ID: "x2"}, {ID: "y"}}
	vecs := [][]float32{{1, 0}, {0.995, 0.0998}, {0, 1}}
	cands := func() []Candidate {
		c := make([]Candidate, 3)
		for i, s := range []float32{3, 2.9, 1} {
			c[i] = Candidate{Item: &items[i], Score: s, Ref: i, Vec: vecs[i]}
		}
		return c
	}
	for _, tt := range []struct {
		lambda float64
		want   []string
	}{
		{0.5, []string{"x1", "y", "x2"}},
		{1, []string{"x1", "x2", "y"}},
	} {
		t.Run(fmt.Sprint(tt.lambda), func(t *testing.T) {
			s := mustCompile(t, Config{Business: []BusinessRule{{Name: "mmr", Action: ActionDiversity, Lambda: tt.lambda}}})
			out := s.Apply(cands(), NewEnv("u", 0, "", now), 3)
			if got := ids(out.Ranked); !slices.Equal(got, tt.want) {
				t.Fatalf("order = %v, want %v", got, tt.want)
			}
			if tt.lambda < 1 && !slices.Equal(out.Ranked[1].Fired(), []string{"mmr"}) {
				t.Fatalf("y fired %v, want the diversity rule", out.Ranked[1].Fired())
			}
		})
	}
}

// TestSet_ApplyCapProperty is the cap's promise on random lists: at most
// max items per brand in the top k whenever enough other candidates
// exist, in score order, and exactly k results when there are k.
func TestSet_ApplyCapProperty(t *testing.T) {
	const max = 3
	s := mustCompile(t, Config{Business: []BusinessRule{{Name: "brand-cap", Action: ActionCap, By: ByBrand, Max: max}}})
	r := rand.New(rand.NewPCG(7, 7))
	brands := []string{"a", "b", "c", "d", ""}
	for trial := range 500 {
		n, k := 1+r.IntN(40), 1+r.IntN(15)
		items := make([]catalog.Item, n)
		cands := make([]Candidate, n)
		per := map[string]int{}
		for i := range items {
			items[i] = catalog.Item{ID: fmt.Sprint(i), Brand: brands[r.IntN(1+r.IntN(len(brands)))]}
			cands[i] = Candidate{Item: &items[i], Score: float32(r.IntN(20)), Ref: i}
			per[items[i].Brand]++
		}
		// How many items the cap allows at all.
		allowed := 0
		for b, c := range per {
			if b == "" {
				allowed += c
			} else {
				allowed += min(c, max)
			}
		}
		out := s.Apply(cands, NewEnv("u", 0, "", now), k)
		if len(out.Ranked) != min(k, n) {
			t.Fatalf("trial %d: %d results, want %d", trial, len(out.Ranked), min(k, n))
		}
		got := map[string]int{}
		for i, c := range out.Ranked {
			got[c.Item.Brand]++
			if i > 0 && allowed >= k && c.Score > out.Ranked[i-1].Score {
				t.Fatalf("trial %d: not in score order at %d: %v", trial, i, ids(out.Ranked))
			}
		}
		if allowed >= min(k, n) {
			for b, c := range got {
				if b != "" && c > max {
					t.Fatalf("trial %d: %d items of brand %q in the top %d, though %d candidates keep the cap", trial, c, b, k, allowed)
				}
			}
		}
	}
}

func BenchmarkSet_Apply(b *testing.B) {
	s := mustCompile(b, Config{Business: []BusinessRule{
		{Name: "acme-up", When: `item.brand == "acme"`, Action: ActionBoost, Amount: 0.1},
		{Name: "brand-three", Action: ActionCap, By: ByBrand, Max: 3},
	}})
	items := make([]catalog.Item, 200)
	for i := range items {
		items[i] = catalog.Item{ID: "x", Brand: []string{"acme", "bolt", "cork", "dune"}[i%4]}
	}
	cands := make([]Candidate, len(items))
	env := NewEnv("u", 0, "", now)
	b.ReportAllocs()
	for b.Loop() {
		for i := range cands {
			cands[i] = Candidate{Item: &items[i], Score: float32(i % 17), Ref: i}
		}
		s.Apply(cands, env, 10)
	}
}

func TestParseFile(t *testing.T) {
	good := []byte("time_zone: Europe/Paris\nbusiness:\n  - name: promo\n    when: query == \"promo\"\n    action: pin\n    items: [x1]\n    position: 1\n")
	c, s, err := ParseFile(good)
	if err != nil || s == nil || c.TimeZone != "Europe/Paris" || len(c.Business) != 1 {
		t.Fatalf("ParseFile(good) = %+v, %v, %v", c, s, err)
	}
	for _, tt := range []struct{ name, src, want string }{
		{"unknown key", "busines: []\n", "field busines not found"},
		{"bad expression", "filters:\n  - name: f\n    expr: item.prise > 1\n", `rules.filters[0] "f": line 1, column 6`},
		{"bad action field", "business:\n  - name: b\n    action: cap\n    by: colour\n    max: 1\n", `business[0].by: must be brand or category`},
		{"config keys", "file: x.yaml\n", "belong in the configuration"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, s, err := ParseFile([]byte(tt.src)); err == nil || s != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFile = %v, %v; want an error containing %q", s, err, tt.want)
			}
		})
	}
}
