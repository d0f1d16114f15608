package embed

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestFeaturizerConfig_Validate(t *testing.T) {
	ok := DefaultFeaturizerConfig()
	tests := []struct {
		name   string
		mutate func(c *FeaturizerConfig)
		want   string
	}{
		{"default", func(c *FeaturizerConfig) {}, ""},
		{"char n-grams off", func(c *FeaturizerConfig) { c.MinN, c.MaxN = 0, 0 }, ""},
		{"too few buckets", func(c *FeaturizerConfig) { c.Buckets = 1 }, "buckets: must be between 2 and 16777216"},
		{"too many buckets", func(c *FeaturizerConfig) { c.Buckets = 1 << 25 }, "buckets: must be between 2 and 16777216"},
		{"min_n zero with max_n", func(c *FeaturizerConfig) { c.MinN = 0 }, "min_n: must be >= 1"},
		{"max_n below min_n", func(c *FeaturizerConfig) { c.MinN, c.MaxN = 4, 3 }, "max_n: must be >= min_n"},
		{"max_n too large", func(c *FeaturizerConfig) { c.MaxN = 9 }, "max_n: must be <= 8"},
		{"negative max_words", func(c *FeaturizerConfig) { c.MaxWords = -1 }, "max_words: must be >= 0"},
		{"negative weight", func(c *FeaturizerConfig) { c.CharWeight = -1 }, "char_weight: must be >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"only separators", "  -- !? ", ""},
		{"case and punctuation", "Café au LAIT!", "cafe au lait"},
		{"accents folded", "naïve—Résumé", "naive resume"},
		{"decomposed accents do not split words", "e\u0301te\u0301", "ete"},
		{"sharp s", "Straße 42", "strasse 42"},
		{"ligature", "Œuvre", "oeuvre"},
		{"non-latin scripts kept", "日本語 Ελληνικά", "日本語 ελληνικά"},
		{"invalid utf-8 is a separator", "a\xffb", "a b"},
		{"digits kept", "iPhone15 pro-max", "iphone15 pro max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Normalize(tt.in); got != tt.want {
				t.Fatalf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func mustFeaturizer(t testing.TB, cfg FeaturizerConfig) *Featurizer {
	t.Helper()
	f, err := NewFeaturizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkFeatures asserts the invariants every output must hold.
func checkFeatures(t testing.TB, buckets int, ids []int64, w []float32) {
	t.Helper()
	if len(ids) != len(w) {
		t.Fatalf("%d ids but %d weights", len(ids), len(w))
	}
	var sum float64
	for i, id := range ids {
		if id < 1 || id >= int64(buckets) {
			t.Fatalf("id %d out of 1..%d", id, buckets-1)
		}
		if i > 0 && ids[i-1] >= id {
			t.Fatalf("ids not strictly increasing at %d: %v", i, ids)
		}
		if !(w[i] > 0) {
			t.Fatalf("weight %d = %v, want > 0", i, w[i])
		}
		sum += float64(w[i])
	}
	if len(ids) > 0 && math.Abs(sum-1) > 1e-4 {
		t.Fatalf("weights sum to %v, want 1", sum)
	}
}

func TestFeaturizer_Featurize(t *testing.T) {
	def := DefaultFeaturizerConfig()
	words := FeaturizerConfig{Buckets: 1 << 20, Seed: 7}

	t.Run("text without words has no features", func(t *testing.T) {
		ids, w := mustFeaturizer(t, def).Featurize(" ,.;- ")
		if len(ids) != 0 || len(w) != 0 {
			t.Fatalf("got %v %v", ids, w)
		}
	})
	t.Run("invariants on real text", func(t *testing.T) {
		f := mustFeaturizer(t, def)
		ids, w := f.Featurize("Wireless noise-cancelling headphones with 30h battery, Bluetooth 5.3")
		if len(ids) < 20 {
			t.Fatalf("only %d features", len(ids))
		}
		checkFeatures(t, def.Buckets, ids, w)
	})
	t.Run("counts words, bigrams and n-grams", func(t *testing.T) {
		cfg := FeaturizerConfig{Buckets: 1 << 22, MinN: 3, MaxN: 5, Bigrams: true}
		// "ab": word, "<ab", "ab>", "<ab>" (no bigram for one word).
		// "ab cd": 2 words, 1 bigram, 3 n-grams each.
		for text, want := range map[string]int{"ab": 4, "ab cd": 9} {
			if ids, _ := mustFeaturizer(t, cfg).Featurize(text); len(ids) != want {
				t.Errorf("%q: %d features, want %d", text, len(ids), want)
			}
		}
	})
	t.Run("same normal form, same features", func(t *testing.T) {
		f := mustFeaturizer(t, def)
		a1, w1 := f.Featurize("Crème Brûlée!")
		a2, w2 := f.Featurize("creme   brulee")
		if !slices.Equal(a1, a2) || !slices.Equal(w1, w2) {
			t.Fatal("texts with the same normal form featurise differently")
		}
	})
	t.Run("bigrams carry order", func(t *testing.T) {
		with := words
		with.Bigrams = true
		a, _ := mustFeaturizer(t, with).Featurize("new york")
		b, _ := mustFeaturizer(t, with).Featurize("york new")
		if slices.Equal(a, b) {
			t.Error("bigrams on: word order does not matter")
		}
		a, _ = mustFeaturizer(t, words).Featurize("new york")
		b, _ = mustFeaturizer(t, words).Featurize("york new")
		if !slices.Equal(a, b) {
			t.Error("bigrams off: word order matters")
		}
	})
	t.Run("seed changes ids", func(t *testing.T) {
		other := words
		other.Seed = 8
		a, _ := mustFeaturizer(t, words).Featurize("hello world")
		b, _ := mustFeaturizer(t, other).Featurize("hello world")
		if slices.Equal(a, b) {
			t.Error("different seeds give the same ids")
		}
	})
	t.Run("max words truncates", func(t *testing.T) {
		capped := words
		capped.MaxWords = 2
		a, _ := mustFeaturizer(t, capped).Featurize("one two three")
		b, _ := mustFeaturizer(t, words).Featurize("one two")
		if !slices.Equal(a, b) {
			t.Errorf("got %v, want %v", a, b)
		}
	})
	t.Run("repeats merge into one weight", func(t *testing.T) {
		ids, w := mustFeaturizer(t, words).Featurize("dog cat dog dog")
		if len(ids) != 2 {
			t.Fatalf("got %d ids, want 2", len(ids))
		}
		dog, _ := mustFeaturizer(t, words).Featurize("dog")
		i := slices.Index(ids, dog[0])
		if i < 0 || math.Abs(float64(w[i])-0.75) > 1e-6 {
			t.Fatalf("dog weight = %v (ids %v, weights %v), want 0.75", w, ids, w)
		}
	})
	t.Run("kind weights", func(t *testing.T) {
		cfg := words
		cfg.Bigrams = true
		cfg.WordWeight = 3
		// Two words at 3 and one bigram at 1: shares 3/7, 3/7, 1/7.
		_, w := mustFeaturizer(t, cfg).Featurize("red shoe")
		got := slices.Sorted(slices.Values(w))
		want := []float32{1.0 / 7, 3.0 / 7, 3.0 / 7}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Fatalf("weights %v, want %v", got, want)
			}
		}
	})
	t.Run("long words are truncated", func(t *testing.T) {
		f := mustFeaturizer(t, def)
		long := strings.Repeat("ab", MaxWordRunes)
		a, _ := f.Featurize(long + "zzzz other")
		b, _ := f.Featurize(long[:MaxWordRunes] + " other")
		if !slices.Equal(a, b) {
			t.Error("runes past MaxWordRunes changed the features")
		}
	})
	t.Run("append reuses caller slices", func(t *testing.T) {
		f := mustFeaturizer(t, def)
		ids, w := f.AppendFeatures([]int64{99}, []float32{9}, "abc")
		one, _ := f.Featurize("abc")
		if ids[0] != 99 || w[0] != 9 || !slices.Equal(ids[1:], one) {
			t.Fatalf("append result %v", ids)
		}
	})
}

func FuzzFeaturizer_Featurize(f *testing.F) {
	for _, s := range []string{"", "hello world", "Café—naïve", "e\u0301", "a\xffb", "日本語", "ǅungla İstanbul ß"} {
		f.Add(s)
	}
	cfg := DefaultFeaturizerConfig()
	cfg.Buckets = 1000
	feat, err := NewFeaturizer(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ids, w := feat.Featurize(text)
		checkFeatures(t, cfg.Buckets, ids, w)
		again, w2 := feat.Featurize(text)
		if !slices.Equal(ids, again) || !slices.Equal(w, w2) {
			t.Fatal("featurisation is not deterministic")
		}
		// The cache relies on this: a text and its normal form are the
		// same query.
		norm := Normalize(text)
		nids, nw := feat.Featurize(norm)
		if !slices.Equal(ids, nids) || !slices.Equal(w, nw) {
			t.Fatalf("Featurize(%q) differs from Featurize(Normalize) = %q", text, norm)
		}
		if Normalize(norm) != norm {
			t.Fatalf("Normalize is not idempotent on %q", text)
		}
	})
}

func BenchmarkFeaturizer_Featurize(b *testing.B) {
	f := mustFeaturizer(b, DefaultFeaturizerConfig())
	text := "Lightweight waterproof hiking boots with Vibram soles, breathable mesh and a padded collar"
	var ids []int64
	var w []float32
	b.ReportAllocs()
	for b.Loop() {
		ids, w = f.AppendFeatures(ids[:0], w[:0], text)
	}
}
