package world

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/catalog"
)

// Limits of Config.Items and Config.Users.
const (
	MinItems = 1_000
	MaxItems = 1_000_000
	MaxUsers = 1_000_000
)

// Horizon is the fixed "now" of every world: items are created during the
// two years before it. It is a constant rather than time.Now so that the
// same seed gives the same bytes on every run.
var Horizon = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	createdSpan     = 2 * 365 * 24 * time.Hour
	unavailableRate = 0.05
	// Popularity follows a Zipf-like law: an item of rank r (drawn uniformly
	// per item, so no global permutation has to be held in memory) gets
	// popularityTop / r^zipfExponent.
	popularityTop = 10_000
	zipfExponent  = 0.9
)

// Config sizes a world. The same Config always produces the same world.
type Config struct {
	Items int   `yaml:"items"`
	Users int   `yaml:"users"`
	Seed  int64 `yaml:"seed"`
}

// Validate reports the first bad field, named by its key.
func (c Config) Validate() error {
	if c.Items < MinItems || c.Items > MaxItems {
		return fmt.Errorf("items: must be between %d and %d, got %d", MinItems, MaxItems, c.Items)
	}
	if c.Users < 1 || c.Users > MaxUsers {
		return fmt.Errorf("users: must be between 1 and %d, got %d", MaxUsers, c.Users)
	}
	return nil
}

// World generates the synthetic catalog and users. Every item and user is a
// pure function of (seed, index), so a World holds only small lookup tables
// and is safe for concurrent use.
type World struct {
	cfg      Config
	seed     uint64
	catCum   []float64   // cumulative category weights, for sampling
	brandCum [][]float64 // per category, cumulative Zipf brand weights
	byName   map[string]int
}

// New returns the world described by cfg.
func New(cfg Config) (*World, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("world config: %w", err)
	}
	w := &World{cfg: cfg, seed: uint64(cfg.Seed), byName: make(map[string]int, len(categories))}
	weights := make([]float64, len(categories))
	for i, c := range categories {
		weights[i] = c.weight
		w.byName[c.name] = i
		bw := make([]float64, len(c.brands))
		for j := range bw {
			bw[j] = 1 / float64(j+1)
		}
		w.brandCum = append(w.brandCum, cumulative(bw))
	}
	w.catCum = cumulative(weights)
	return w, nil
}

// Config returns the configuration the world was built from.
func (w *World) Config() Config { return w.cfg }

// Categories returns the category names, in a fixed order.
func Categories() []string {
	names := make([]string, len(categories))
	for i, c := range categories {
		names[i] = c.name
	}
	return names
}

// Vocabulary returns the words specific to a category (nouns, adjectives,
// features and uses), or nil for an unknown category.
func Vocabulary(name string) []string {
	for _, c := range categories {
		if c.name == name {
			var v []string
			for _, l := range [][]string{c.nouns, c.adjectives, c.features, c.uses} {
				v = append(v, l...)
			}
			return v
		}
	}
	return nil
}

// ItemID is the id of the i-th item. Fixed width keeps ids sortable.
func ItemID(i int) string { return fmt.Sprintf("item-%07d", i) }

// UserID is the id of the i-th user.
func UserID(i int) string { return fmt.Sprintf("user-%07d", i) }

// Items and users draw from different PCG streams of the same seed, so
// adding users never changes the catalog and vice versa.
func (w *World) itemRand(i int) *rand.Rand { return rand.New(rand.NewPCG(w.seed, uint64(i)<<1)) }
func (w *World) userRand(i int) *rand.Rand { return rand.New(rand.NewPCG(w.seed, uint64(i)<<1|1)) }

// Item returns the i-th item (0 <= i < Config.Items).
func (w *World) Item(i int) catalog.Item {
	r := w.itemRand(i)
	ci := pick(r, w.catCum)
	c := &categories[ci]
	brand := c.brands[pick(r, w.brandCum[ci])]
	adj, adj2 := two(r, c.adjectives)
	feat := c.features[r.IntN(len(c.features))]
	noun := c.nouns[r.IntN(len(c.nouns))]
	use, use2 := two(r, c.uses)

	var title string
	switch r.IntN(3) {
	case 0:
		title = brand + " " + capital(adj) + " " + capital(feat) + " " + capital(noun)
	case 1:
		title = brand + " " + capital(adj) + " " + capital(noun)
	default:
		title = capital(adj) + " " + capital(noun) + " " + series[r.IntN(len(series))]
	}
	var desc string
	switch r.IntN(3) {
	case 0:
		desc = fmt.Sprintf("A %s %s from %s, made with %s for %s and %s.", adj, noun, brand, feat, use, use2)
	case 1:
		desc = fmt.Sprintf("This %s %s pairs %s with a %s finish. Ideal for %s.", adj, noun, feat, adj2, use)
	default:
		desc = fmt.Sprintf("%s %s by %s: %s, %s and ready for %s.", capital(feat), noun, brand, adj, adj2, use)
	}
	tags := []string{c.name, adj, feat, use}
	if r.IntN(2) == 0 {
		tags = append(tags, adj2)
	}

	price := c.median * math.Exp(c.sigma*r.NormFloat64())
	price = math.Max(0.99, math.Floor(price)+0.99) // shelf prices end in .99
	rank := 1 + r.IntN(w.cfg.Items)
	pop := math.Round(popularityTop/math.Pow(float64(rank), zipfExponent)*100) / 100
	return catalog.Item{
		ID:          ItemID(i),
		Title:       title,
		Description: desc,
		Brand:       brand,
		Category:    c.name,
		Tags:        tags,
		Price:       price,
		AgeRating:   pickAge(r, c.ages),
		Available:   r.Float64() >= unavailableRate,
		CreatedAt:   Horizon.Add(-time.Duration(r.Int64N(int64(createdSpan/time.Second))) * time.Second),
		Popularity:  pop,
	}
}

var series = []string{"Pro", "Plus", "II", "Max", "Lite", "Classic", "Mini", "X"}

// User is one synthetic person. Its preferences are hidden from the
// service: they drive the click model and are what learning should recover.
type User struct {
	ID  string `json:"id"`
	Age int    `json:"age"`
	// Categories are affinities summing to 1 over 2-4 categories.
	Categories map[string]float64 `json:"categories"`
	// Brands are affinities in (0, 1] for 1-3 favourite brands.
	Brands map[string]float64 `json:"brands"`
	// PriceLo and PriceHi bound the comfortable price as a multiple of the
	// category's median price: a user who likes cheap coffee and cheap
	// bicycles is one person even though the two prices differ tenfold.
	PriceLo float64 `json:"price_lo"`
	PriceHi float64 `json:"price_hi"`
}

// User returns the i-th user (0 <= i < Config.Users).
func (w *World) User(i int) User {
	r := w.userRand(i)
	u := User{ID: UserID(i), Categories: map[string]float64{}, Brands: map[string]float64{}}
	var pool []string
	switch x := r.Float64(); {
	case x < 0.12:
		u.Age, pool = 5+r.IntN(8), kidCategories
	case x < 0.27:
		u.Age, pool = 13+r.IntN(5), teenCategories
	default:
		u.Age, pool = 18+r.IntN(58), Categories()
	}
	// Weighted choice without replacement of 2-4 categories.
	poolW := make([]float64, len(pool))
	for j, name := range pool {
		poolW[j] = categories[w.byName[name]].weight
	}
	n := 2 + r.IntN(3)
	var chosen []string
	var aff []float64
	sum := 0.0
	for len(chosen) < n && len(chosen) < len(pool) {
		j := pick(r, cumulative(poolW))
		poolW[j] = 0
		chosen = append(chosen, pool[j])
		a := -math.Log(1 - r.Float64()) // exponential draws normalise to a Dirichlet(1) sample
		aff = append(aff, a)
		sum += a
	}
	for j, name := range chosen {
		u.Categories[name] = round3(aff[j] / sum)
	}
	for range 1 + r.IntN(3) {
		c := &categories[w.byName[chosen[r.IntN(len(chosen))]]]
		u.Brands[c.brands[r.IntN(len(c.brands))]] = round3(0.3 + 0.7*r.Float64())
	}
	u.PriceLo = round3(0.3 + 0.5*r.Float64())
	u.PriceHi = round3(1.2 + 1.8*r.Float64())
	return u
}

// Users returns every user of the world. Users are few enough to hold in
// memory; items are not, hence no Items counterpart.
func (w *World) Users() []User {
	us := make([]User, w.cfg.Users)
	for i := range us {
		us[i] = w.User(i)
	}
	return us
}

func cumulative(ws []float64) []float64 {
	out := make([]float64, len(ws))
	s := 0.0
	for i, x := range ws {
		s += x
		out[i] = s
	}
	return out
}

// pick samples an index with probability proportional to its weight, given
// the cumulative weights.
func pick(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	// Only reached through rounding; return the last entry with weight.
	for i := len(cum) - 1; i > 0; i-- {
		if cum[i] > cum[i-1] {
			return i
		}
	}
	return 0
}

func pickAge(r *rand.Rand, ages []ageShare) int {
	x := r.Float64()
	for _, a := range ages {
		if x < a.p {
			return a.age
		}
		x -= a.p
	}
	return ages[len(ages)-1].age
}

// two returns two different words of l.
func two(r *rand.Rand, l []string) (string, string) {
	i := r.IntN(len(l))
	j := (i + 1 + r.IntN(len(l)-1)) % len(l)
	return l[i], l[j]
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
