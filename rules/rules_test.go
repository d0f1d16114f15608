package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// childRule is the architecture's example: no heavy-metal for children under
// seven, but an unknown age (0) is not a child.
const childRule = `!(user.age > 0 && user.age < 7 && item.category == "heavy-metal")`

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{
			name: "valid",
			cfg: Config{
				Filters:  []FilterRule{{Name: "f", Expr: "item.available"}},
				Business: []BusinessRule{{Name: "b", Action: ActionBoost, Amount: -0.5}, {Name: "c", Action: ActionCap, By: ByBrand, Max: 2}},
			},
		},
		{
			name: "empty and duplicate names",
			cfg: Config{
				Filters:  []FilterRule{{Name: "", Expr: "true"}, {Name: "x", Expr: "true"}},
				Business: []BusinessRule{{Name: "x", Action: ActionBoost, Amount: 1}},
			},
			want: []string{"filters[0].name: must not be empty", `business[0].name: duplicate "x" (also filters[1])`},
		},
		{
			name: "empty expression",
			cfg:  Config{Filters: []FilterRule{{Name: "f"}}},
			want: []string{"filters[0].expr: must not be empty"},
		},
		{
			name: "bad action",
			cfg:  Config{Business: []BusinessRule{{Name: "b", Action: "teleport"}}},
			want: []string{`business[0].action: must be one of boost, bury, cap, pin, hide, diversity, explore, got "teleport"`},
		},
		{
			name: "boost without amount and with cap fields",
			cfg:  Config{Business: []BusinessRule{{Name: "b", Action: ActionBoost, By: ByBrand}}},
			want: []string{"business[0].amount: set exactly one of amount and factor for boost", "business[0].by: does not apply to boost"},
		},
		{
			name: "cap without by and max",
			cfg:  Config{Business: []BusinessRule{{Name: "c", Action: ActionCap, By: "colour", Amount: 1}}},
			want: []string{`business[0].by: must be brand or category, got "colour"`, "business[0].max: must be > 0", "business[0].amount: does not apply to cap"},
		},
		{
			name: "factors out of range",
			cfg: Config{Business: []BusinessRule{
				{Name: "b", Action: ActionBoost, Factor: 0.5}, {Name: "d", Action: ActionBury, Factor: 2}, {Name: "e", Action: ActionBury, Amount: -1},
			}},
			want: []string{"business[0].factor: must be > 1 for boost, got 0.5", "business[1].factor: must be in (0, 1) for bury, got 2", "business[2].amount: must be > 0 for bury"},
		},
		{
			name: "pin, hide, explore, diversity fields",
			cfg: Config{Business: []BusinessRule{
				{Name: "p", Action: ActionPin, Items: []string{"x", "x"}},
				{Name: "h", Action: ActionHide},
				{Name: "x", Action: ActionExplore, Position: 0},
				{Name: "m", Action: ActionDiversity, Lambda: 1.5, When: "true"},
				{Name: "m2", Action: ActionDiversity, Lambda: 0.5},
			}},
			want: []string{
				"business[0].items[1]: must be a distinct, non-empty item id", "business[0].position: must be >= 1",
				"business[1].when: required for hide", "business[2].position: must be >= 1", "business[2].when: required for explore",
				"business[3].lambda: must be in (0, 1], got 1.5", "business[3].when: does not apply to diversity",
				"business[4]: only one diversity rule",
			},
		},
		{
			name: "time zone",
			cfg:  Config{TimeZone: "Mars/Olympus"},
			want: []string{"time_zone: unknown time zone Mars/Olympus"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{
			name: "unknown name with position",
			cfg:  Config{Filters: []FilterRule{{Name: "ok", Expr: "item.available"}, {Name: "age-limit", Expr: "user.age > 0 && usr.age < 7"}}},
			want: []string{`rules.filters[1] "age-limit": line 1, column 17: unknown name usr`},
		},
		{
			name: "second line",
			cfg:  Config{Filters: []FilterRule{{Name: "ml", Expr: "item.available &&\n  item.prize > 3"}}},
			want: []string{`rules.filters[0] "ml": line 2, column 8: type rules.ItemEnv has no field prize`},
		},
		{
			name: "filter must be bool",
			cfg:  Config{Filters: []FilterRule{{Name: "num", Expr: "item.price * 2"}}},
			want: []string{`rules.filters[0] "num": expected bool, but got float64`},
		},
		{
			name: "type error",
			cfg:  Config{Filters: []FilterRule{{Name: "t", Expr: `item.price > "cheap"`}}},
			want: []string{`rules.filters[0] "t": line 1, column 12: invalid operation: > (mismatched types float64 and string)`},
		},
		{
			name: "business condition and several errors joined",
			cfg: Config{
				Filters:  []FilterRule{{Name: "f", Expr: "item.avail"}},
				Business: []BusinessRule{{Name: "b", When: "item.brand == ", Action: ActionBoost, Amount: 1}, {Name: "c", Action: ActionCap}},
			},
			want: []string{
				`rules.filters[0] "f": line 1, column 6: type rules.ItemEnv has no field avail`,
				`rules.business[0] "b": line 1, column 14: unexpected token EOF`,
				"rules.business[1].by: must be brand or category",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(tt.cfg)
			if err == nil {
				t.Fatalf("Compile() = %v, nil; want errors", s)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Compile() error:\n%s\nmissing:\n%s", err, w)
				}
			}
		})
	}
}

func mustCompile(t testing.TB, cfg Config) *Set {
	t.Helper()
	s, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSet_Keep(t *testing.T) {
	s := mustCompile(t, Config{Filters: []FilterRule{
		{Name: "available", Expr: "item.available"},
		{Name: "child-no-metal", Expr: childRule},
		{Name: "age-rating", Expr: "user.age == 0 || item.age_rating <= user.age"},
		{Name: "no-explicit-for-query-kids", Expr: `!(query contains "kids" && "explicit" in item.tags)`},
		{Name: "fresh-or-popular", Expr: "item.age_days < 3650 || item.popularity > 10"},
	}})
	metal := catalog.Item{ID: "m", Category: "heavy-metal", Available: true, CreatedAt: now.Add(-24 * time.Hour)}
	tests := []struct {
		name  string
		item  catalog.Item
		age   int
		query string
		want  bool
	}{
		{name: "metal for a five year old", item: metal, age: 5, want: false},
		{name: "metal for a seven year old", item: metal, age: 7, want: true},
		{name: "metal for unknown age", item: metal, age: 0, want: true},
		{name: "jazz for a five year old", item: catalog.Item{Category: "jazz", Available: true}, age: 5, want: true},
		{name: "unavailable", item: catalog.Item{Category: "jazz"}, want: false},
		{name: "age rating above user age", item: catalog.Item{Available: true, AgeRating: 16}, age: 12, want: false},
		{name: "age rating at user age", item: catalog.Item{Available: true, AgeRating: 12}, age: 12, want: true},
		{name: "tag and query", item: catalog.Item{Available: true, Tags: []string{"loud", "explicit"}}, query: "songs for kids", want: false},
		{name: "tag without query", item: catalog.Item{Available: true, Tags: []string{"explicit"}}, query: "songs", want: true},
		{name: "old and unpopular", item: catalog.Item{Available: true, CreatedAt: now.AddDate(-11, 0, 0)}, want: false},
		{name: "old but popular", item: catalog.Item{Available: true, CreatedAt: now.AddDate(-11, 0, 0), Popularity: 11}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := NewEnv("u1", tt.age, tt.query, now)
			env.SetItem(&tt.item)
			if got := s.Keep(env); got != tt.want {
				t.Fatalf("Keep() = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("no filters keeps everything", func(t *testing.T) {
		empty := mustCompile(t, Config{})
		env := NewEnv("", 0, "", now)
		env.SetItem(&catalog.Item{})
		if !empty.Keep(env) {
			t.Fatal("empty set dropped an item")
		}
	})
	t.Run("runtime error drops the item and is counted", func(t *testing.T) {
		s := mustCompile(t, Config{Filters: []FilterRule{{Name: "second-tag", Expr: `item.tags[1] != "x"`}}})
		env := NewEnv("", 0, "", now)
		env.SetItem(&catalog.Item{Tags: []string{"a", "b"}})
		if !s.Keep(env) {
			t.Fatal("item with two tags dropped")
		}
		env.SetItem(&catalog.Item{Tags: []string{"a"}})
		if s.Keep(env) {
			t.Fatal("item whose filter failed at run time was kept")
		}
		if s.RuntimeErrors() != 1 {
			t.Fatalf("RuntimeErrors() = %d, want 1", s.RuntimeErrors())
		}
	})
}

func TestEnv_SetItem(t *testing.T) {
	env := NewEnv("u", 9, "q", now)
	tests := []struct {
		name    string
		created time.Time
		want    float64
	}{
		{"ten days old", now.Add(-240 * time.Hour), 10},
		{"unknown date", time.Time{}, 0},
		{"future date", now.Add(time.Hour), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.SetItem(&catalog.Item{ID: "a", CreatedAt: tt.created, Tags: []string{"t"}, Price: 2.5})
			if env.Item.AgeDays != tt.want || env.Item.ID != "a" || env.Item.Price != 2.5 || env.User.Age != 9 || env.Query != "q" {
				t.Fatalf("env = %+v, want age_days %v", env, tt.want)
			}
		})
	}
}

func ids(cands []Candidate) []string {
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.Item.ID
	}
	return out
}

// FuzzCompile feeds arbitrary expressions (config is outside input) to the
// compiler: it must return a set or an error, never panic, and a set it
// returns must evaluate without panicking.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		childRule, "item.available", `"x" in item.tags`, "item.price > 3 ? true : false",
		"user.age", "", "((", `item.tags[9] == ""`, "len(query) > 2 && query matches '^a'",
		"all(item.tags, # != 'b')", "1/0 == 1", "let x = item.price; x > 1",
	} {
		f.Add(seed)
	}
	item := catalog.Item{ID: "i", Title: "t", Tags: []string{"a", "b"}, Price: 3, Available: true, CreatedAt: now}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Compile(Config{
			Filters:  []FilterRule{{Name: "f", Expr: src}},
			Business: []BusinessRule{{Name: "b", When: src, Action: ActionBoost, Amount: 1}},
		})
		if err != nil {
			if s != nil {
				t.Fatal("Compile returned a set and an error")
			}
			return
		}
		env := NewEnv("u", 5, "abc", now)
		env.SetItem(&item)
		s.Keep(env)
		s.Apply([]Candidate{{Item: &item}}, env, 1)
	})
}

func BenchmarkSet_Keep(b *testing.B) {
	s := mustCompile(b, Config{Filters: []FilterRule{
		{Name: "available", Expr: "item.available"},
		{Name: "child-no-metal", Expr: childRule},
		{Name: "age-rating", Expr: "user.age == 0 || item.age_rating <= user.age"},
	}})
	items := []catalog.Item{
		{ID: "a", Category: "heavy-metal", Available: true},
		{ID: "b", Category: "jazz", Available: true, AgeRating: 3},
	}
	env := NewEnv("u", 5, "", now)
	b.ReportAllocs()
	kept := 0
	for i := 0; b.Loop(); i++ {
		env.SetItem(&items[i&1])
		if s.Keep(env) {
			kept++
		}
	}
	if kept == 0 {
		b.Fatal("no item kept")
	}
}
