package world

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/catalog"
)

func newWorld(t testing.TB, items, users int, seed int64) *World {
	t.Helper()
	w, err := New(Config{Items: items, Users: users, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "smallest", cfg: Config{Items: 1000, Users: 1}},
		{name: "largest", cfg: Config{Items: 1_000_000, Users: 1_000_000, Seed: -3}},
		{name: "too few items", cfg: Config{Items: 999, Users: 1}, wantErr: "items: must be between 1000 and 1000000"},
		{name: "too many items", cfg: Config{Items: 1_000_001, Users: 1}, wantErr: "items: "},
		{name: "no users", cfg: Config{Items: 1000}, wantErr: "users: must be between 1 and"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	cfg := Config{Items: 2000, Users: 100, Seed: 7}
	write := func(cfg Config) (string, []byte, []byte) {
		dir := t.TempDir()
		var progress bytes.Buffer
		if err := Write(dir, cfg, &progress); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(progress.String(), "catalog 2000/2000 items") {
			t.Errorf("progress = %q", progress.String())
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 2 {
			t.Errorf("dir holds %d entries, want the 2 files and no temporaries", len(entries))
		}
		cat, err := os.ReadFile(filepath.Join(dir, CatalogFile))
		if err != nil {
			t.Fatal(err)
		}
		users, err := os.ReadFile(filepath.Join(dir, UsersFile))
		if err != nil {
			t.Fatal(err)
		}
		return dir, cat, users
	}
	dir, cat1, users1 := write(cfg)

	t.Run("same seed gives the same bytes", func(t *testing.T) {
		_, cat2, users2 := write(cfg)
		if !bytes.Equal(cat1, cat2) || !bytes.Equal(users1, users2) {
			t.Error("two runs with the same seed differ")
		}
	})
	t.Run("different seed gives different bytes", func(t *testing.T) {
		other := cfg
		other.Seed = 8
		_, cat2, users2 := write(other)
		if bytes.Equal(cat1, cat2) || bytes.Equal(users1, users2) {
			t.Error("different seeds gave identical files")
		}
	})
	t.Run("catalog passes validation", func(t *testing.T) {
		items, err := catalog.ReadFile(filepath.Join(dir, CatalogFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != cfg.Items {
			t.Fatalf("read %d items, want %d", len(items), cfg.Items)
		}
		w := newWorld(t, cfg.Items, cfg.Users, cfg.Seed)
		if got, want := items[1234], w.Item(1234); !reflect.DeepEqual(got, want) {
			t.Errorf("item 1234 in file %+v, generated %+v", got, want)
		}
	})
	t.Run("users read back", func(t *testing.T) {
		users, err := ReadUsers(filepath.Join(dir, UsersFile))
		if err != nil {
			t.Fatal(err)
		}
		w := newWorld(t, cfg.Items, cfg.Users, cfg.Seed)
		if !reflect.DeepEqual(users, w.Users()) {
			t.Error("users.jsonl differs from World.Users")
		}
	})
	t.Run("bad config writes nothing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "w")
		if err := Write(dir, Config{Items: 10, Users: 1}, nil); err == nil {
			t.Fatal("want error")
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("dir exists after a refused config: %v", err)
		}
	})
}

func TestWorld_Item(t *testing.T) {
	const n = 20_000
	w := newWorld(t, n, 1, 1)
	perCat := map[string][]float64{}
	brandCats := map[string]map[string]bool{}
	var unavailable, adult int
	var pops []float64
	for i := range n {
		it := w.Item(i)
		if it.ID != ItemID(i) {
			t.Fatalf("item %d has id %q", i, it.ID)
		}
		perCat[it.Category] = append(perCat[it.Category], it.Price)
		if brandCats[it.Brand] == nil {
			brandCats[it.Brand] = map[string]bool{}
		}
		brandCats[it.Brand][it.Category] = true
		if !it.Available {
			unavailable++
		}
		if it.AgeRating >= 18 {
			adult++
		}
		if it.Category == "heavy-metal" && it.AgeRating < 12 {
			t.Errorf("%s: heavy-metal rated %d", it.ID, it.AgeRating)
		}
		if it.CreatedAt.After(Horizon) || it.CreatedAt.Before(Horizon.Add(-createdSpan)) {
			t.Errorf("%s: created %v outside the two years before %v", it.ID, it.CreatedAt, Horizon)
		}
		pops = append(pops, it.Popularity)
	}
	if len(perCat) < 12 || len(perCat) > 16 {
		t.Errorf("%d categories, want 12-16", len(perCat))
	}
	if rate := float64(unavailable) / n; rate < 0.04 || rate > 0.06 {
		t.Errorf("unavailable rate %.3f, want about 0.05", rate)
	}
	if adult == 0 {
		t.Error("no 18+ items")
	}
	spanning := 0
	for _, cats := range brandCats {
		if len(cats) > 1 {
			spanning++
		}
	}
	if spanning < 3 {
		t.Errorf("%d brands span categories, want at least 3", spanning)
	}
	if mc, mk := median(perCat["cycling"]), median(perCat["coffee"]); mc < 4*mk {
		t.Errorf("median prices cycling %.2f, coffee %.2f: categories should differ in price level", mc, mk)
	}
	// Zipf-like: the top 1% of items hold a large share of the popularity.
	slices.Sort(pops)
	slices.Reverse(pops)
	total, top := 0.0, 0.0
	for i, p := range pops {
		total += p
		if i < n/100 {
			top += p
		}
	}
	if share := top / total; share < 0.3 {
		t.Errorf("top 1%% of items hold %.2f of popularity, want a heavy head (>= 0.3)", share)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Category text must be distinguishable: nouns belong to one category only,
// and every item's title names a noun of its own category.
func TestVocabulary(t *testing.T) {
	owner := map[string]string{}
	for _, c := range categories {
		for _, n := range c.nouns {
			if o, ok := owner[n]; ok {
				t.Errorf("noun %q in both %s and %s", n, o, c.name)
			}
			owner[n] = c.name
		}
	}
	w := newWorld(t, 5000, 1, 3)
	for i := range 5000 {
		it := w.Item(i)
		found := false
		for _, word := range strings.Fields(strings.ToLower(it.Title + " " + it.Description)) {
			word = strings.Trim(word, ".,:")
			if o, ok := owner[word]; ok {
				if o != it.Category {
					t.Fatalf("%s (%s) uses noun %q of %s: %q", it.ID, it.Category, word, o, it.Title)
				}
				found = true
			}
		}
		if !found {
			t.Fatalf("%s (%s) names none of its category's nouns: %q", it.ID, it.Category, it.Title)
		}
	}
	if Vocabulary("no-such") != nil {
		t.Error("Vocabulary of an unknown category is not nil")
	}
}

func TestWorld_User(t *testing.T) {
	w := newWorld(t, 1000, 2000, 5)
	if !reflect.DeepEqual(w.User(17), w.User(17)) {
		t.Fatal("User is not deterministic")
	}
	for _, u := range w.Users() {
		sum := 0.0
		for name, a := range u.Categories {
			sum += a
			if Vocabulary(name) == nil {
				t.Fatalf("%s prefers unknown category %q", u.ID, name)
			}
			if u.Age < 13 && (name == "wine" || name == "heavy-metal") {
				t.Errorf("%s aged %d prefers %s", u.ID, u.Age, name)
			}
		}
		if len(u.Categories) < 2 || len(u.Categories) > 4 || math.Abs(sum-1) > 0.01 {
			t.Errorf("%s: %d categories summing to %.3f", u.ID, len(u.Categories), sum)
		}
		if len(u.Brands) < 1 || len(u.Brands) > 3 {
			t.Errorf("%s: %d brands", u.ID, len(u.Brands))
		}
		for b, a := range u.Brands {
			if a <= 0 || a > 1 {
				t.Errorf("%s: brand %s affinity %v", u.ID, b, a)
			}
		}
		if u.Age < 5 || u.Age > 75 || !(0 < u.PriceLo && u.PriceLo < 1 && 1 < u.PriceHi) {
			t.Errorf("%s: age %d, price band %v..%v", u.ID, u.Age, u.PriceLo, u.PriceHi)
		}
	}
}

// BenchmarkWorld_Item measures generation alone; BenchmarkWrite includes
// JSON encoding and the file, i.e. what `recsys gen` costs per item.
func BenchmarkWorld_Item(b *testing.B) {
	w := newWorld(b, MaxItems, 1, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = w.Item(i % MaxItems)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkWrite(b *testing.B) {
	cfg := Config{Items: 50_000, Users: 1000, Seed: 1}
	dir := b.TempDir()
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(dir, cfg, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*cfg.Items)/b.Elapsed().Seconds(), "items/s")
}
