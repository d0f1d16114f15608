package world

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/recsys-dev/recsys/catalog"
)

// The click model is a position-based model (PBM): a user clicks an item
// shown at position pos (0 = top) with probability
//
//	ClickProb = Examination(pos) * Attractiveness(Utility(user, item))
//
// Examination falls with position as 1/(pos+1)^ExamDecay, independently of
// the item; attractiveness is a logistic function of the hidden utility.
// Separating the two is what lets an unbiased learner (inverse propensity
// weighting) recover utility from position-biased clicks.
const (
	ExamDecay = 1.0
	// AttractBias shifts utility so that an item outside the user's
	// categories is clicked only rarely (a few percent at the top).
	AttractBias = 4.0
)

// Weights of the hidden utility's terms.
const (
	wCategory    = 4.0
	wBrand       = 2.0
	wPriceBelow  = 0.5 // per unit of log-ratio below the comfortable band
	wPriceAbove  = 1.0 // paying too much hurts more than a suspicious bargain
	wQuality     = 1.0
	wNoise       = 0.5
	unavailable  = 1.0
	tooYoung     = 10.0
	qualityScale = popularityTop
)

// Utility is the hidden relevance of it to u: high when the item is in one
// of the user's categories, from a favourite brand, priced within the
// user's band and of good quality (popularity plus a fixed per-item term
// derived from the seed). Items above the user's age are all but ruled out
// and unavailable items are less attractive. It is deterministic.
func (w *World) Utility(u *User, it *catalog.Item) float64 {
	if u.Age > 0 && it.AgeRating > u.Age {
		return -tooYoung
	}
	v := wCategory*u.Categories[it.Category] + wBrand*u.Brands[it.Brand]
	if ci, ok := w.byName[it.Category]; ok && it.Price > 0 {
		ratio := it.Price / categories[ci].median
		switch {
		case ratio < u.PriceLo:
			v -= wPriceBelow * math.Log(u.PriceLo/ratio)
		case ratio > u.PriceHi:
			v -= wPriceAbove * math.Log(ratio/u.PriceHi)
		}
	}
	v += wQuality * math.Log1p(it.Popularity) / math.Log1p(qualityScale)
	v += wNoise * (w.itemNoise(it.ID) - 0.5)
	if !it.Available {
		v -= unavailable
	}
	return v
}

// itemNoise is a per-item value in [0, 1) fixed by the seed: the part of an
// item's quality that no observable attribute explains.
func (w *World) itemNoise(id string) float64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	x := h.Sum64() ^ (w.seed * 0x9E3779B97F4A7C15)
	x ^= x >> 33 // fnv's low bits are weak; fold the high ones down
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return float64(x>>11) / (1 << 53)
}

// Examination is the probability that a user looks at position pos (0 is
// the top). Negative positions count as the top.
func Examination(pos int) float64 {
	if pos < 0 {
		pos = 0
	}
	return 1 / math.Pow(float64(pos+1), ExamDecay)
}

// Attractiveness is the probability of a click once examined.
func Attractiveness(utility float64) float64 {
	return 1 / (1 + math.Exp(-(utility - AttractBias)))
}

// ClickProb is the probability that u clicks it shown at position pos.
func (w *World) ClickProb(u *User, it *catalog.Item, pos int) float64 {
	return Examination(pos) * Attractiveness(w.Utility(u, it))
}

// Query returns a search query u might type: 2-4 words from the vocabulary
// of one of the user's categories, chosen by affinity. rng supplies all
// randomness, so a seeded rng gives a reproducible query stream.
func (w *World) Query(u *User, rng *rand.Rand) string {
	c := &categories[w.queryCategory(u, rng)]
	word := func(l []string) string { return l[rng.IntN(len(l))] }
	switch n := 2 + rng.IntN(3); n {
	case 2:
		if rng.IntN(2) == 0 {
			return word(c.adjectives) + " " + word(c.nouns)
		}
		return word(c.features) + " " + word(c.nouns)
	case 3:
		return word(c.adjectives) + " " + word(c.features) + " " + word(c.nouns)
	default:
		return strings.Join([]string{word(c.adjectives), word(c.features), word(c.nouns), word(c.uses)}, " ")
	}
}

func (w *World) queryCategory(u *User, rng *rand.Rand) int {
	// Map order is random; sort so a seeded rng gives the same query.
	names := make([]string, 0, len(u.Categories))
	for name := range u.Categories {
		if _, ok := w.byName[name]; ok && u.Categories[name] > 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return pick(rng, w.catCum)
	}
	slices.Sort(names)
	ws := make([]float64, len(names))
	for i, name := range names {
		ws[i] = u.Categories[name]
	}
	return w.byName[names[pick(rng, cumulative(ws))]]
}
