package index

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/catalog"
)

// lexCorpus is a seeded corpus of n documents over a small vocabulary,
// with some fields empty, some words repeated and a few compounds.
func lexCorpus(seed uint64, n int) [][NumFields]string {
	words := []string{"red", "wine", "merlot", "oak", "barrel", "wireless", "headphones", "noise", "cable", "usb-c",
		"wh-1000xm5", "toy", "train", "wooden", "doll", "guitar", "album", "jazz", "smooth", "the", "and", "cellar"}
	rng := rand.New(rand.NewPCG(seed, 1))
	docs := make([][NumFields]string, n)
	for d := range docs {
		for f := range NumFields {
			if rng.IntN(4) == 0 {
				continue
			}
			k := 1 + rng.IntN([]int{4, 1, 1, 3, 12}[f])
			var b strings.Builder
			for range k {
				b.WriteString(words[rng.IntN(len(words))])
				b.WriteByte(' ')
			}
			docs[d][f] = b.String()
		}
	}
	return docs
}

func buildLex(t testing.TB, cfg LexicalConfig, docs [][NumFields]string) *Lexical {
	t.Helper()
	x, err := BuildLexical(context.Background(), cfg, len(docs), func(d, f int) string { return docs[d][f] })
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// refBM25F scores every document by the definition, from the analyzer's
// term streams: the oracle the index's postings, impacts and accumulators
// are checked against.
func refBM25F(an *Analyzer, p LexicalParams, docs [][NumFields]string, query string) []float64 {
	n := len(docs)
	tf := make([]map[string]float64, n) // weighted frequency per term
	dl := make([]float64, n)
	has := make([]map[string]bool, n)
	df := map[string]int{}
	var total float64
	for d := range docs {
		tf[d], has[d] = map[string]float64{}, map[string]bool{}
		for f := range NumFields {
			an.Analyze(docs[d][f], func(term string, counted bool) {
				tf[d][term] += p.Weights[f]
				if counted {
					dl[d] += p.Weights[f]
				}
				has[d][term] = true
			})
		}
		for term := range has[d] {
			df[term]++
		}
		total += dl[d]
	}
	avg := total / float64(n)
	scores := make([]float64, n)
	an.AnalyzeQuery(query, func(term string, _ bool) {
		if df[term] == 0 {
			return
		}
		idf := math.Log(1 + (float64(n)-float64(df[term])+0.5)/(float64(df[term])+0.5))
		for d := range docs {
			if t := tf[d][term]; t > 0 {
				scores[d] += idf * (p.K1 + 1) * t / (t + p.K1*(1-p.B+p.B*dl[d]/avg))
			}
		}
	})
	return scores
}

func TestLexical_MatchesDefinition(t *testing.T) {
	docs := lexCorpus(1, 400)
	queries := []string{"red wine", "merlot oak barrel", "wireless noise headphones", "usb-c cable", "WH-1000XM5",
		"wooden toy train train", "jazz", "the", "unknownword", "smooth jazz guitar album cellar"}
	for _, cfg := range []LexicalConfig{
		DefaultLexicalConfig(),
		{AnalyzerConfig: DefaultAnalyzerConfig(), K1: 1.2, B: 0.75, Fields: FieldWeights{Title: 1, Brand: 1, Category: 1, Tags: 1, Description: 1}},
		{AnalyzerConfig: AnalyzerConfig{Stopwords: StopNone, Stemmer: StemNone}, K1: 0.5, B: 0, Fields: FieldWeights{Title: 3, Description: 0.5}},
	} {
		x := buildLex(t, cfg, docs)
		for _, q := range queries {
			want := refBM25F(x.Analyzer(), cfg.Params(), docs, q)
			r := x.Search(x.Parse(q), 20, nil)
			for d := range docs {
				got := float64(r.Score(int32(d)))
				if math.Abs(got-want[d]) > 1e-4*math.Max(1, want[d]) {
					t.Fatalf("%+v %q: doc %d scores %v, definition %v", cfg.Params(), q, d, got, want[d])
				}
			}
			matched := 0
			for _, s := range want {
				if s > 0 {
					matched++
				}
			}
			if len(r.Hits) != min(20, matched) {
				t.Fatalf("%q: %d hits, %d documents match", q, len(r.Hits), matched)
			}
			for i := 1; i < len(r.Hits); i++ {
				if lexBetter(r.Hits[i], r.Hits[i-1]) {
					t.Fatalf("%q: hits out of order at %d: %v", q, i, r.Hits)
				}
			}
			// Nothing outside the hits scores higher than the last hit.
			if len(r.Hits) > 0 {
				last := r.Hits[len(r.Hits)-1]
				for d := range docs {
					c := LexicalHit{int32(d), r.Score(int32(d))}
					if c.Score > 0 && lexBetter(c, last) && !slices.ContainsFunc(r.Hits, func(h LexicalHit) bool { return h.ID == c.ID }) {
						t.Fatalf("%q: doc %d (%v) beats the last hit %v but is missing", q, d, c.Score, last)
					}
				}
			}
			r.Release()
		}
	}
}

func TestLexical_EqualWeightsAreOneField(t *testing.T) {
	docs := lexCorpus(2, 300)
	ones := LexicalConfig{AnalyzerConfig: DefaultAnalyzerConfig(), K1: 0.9, B: 0.4,
		Fields: FieldWeights{Title: 1, Brand: 1, Category: 1, Tags: 1, Description: 1}}
	fielded := buildLex(t, ones, docs)
	joined := make([][NumFields]string, len(docs))
	for d := range docs {
		joined[d][FieldDescription] = strings.Join(docs[d][:], " ")
	}
	one := buildLex(t, ones, joined)
	for _, q := range []string{"red wine merlot", "wireless headphones", "usb-c"} {
		a, b := fielded.Search(fielded.Parse(q), len(docs), nil), one.Search(one.Parse(q), len(docs), nil)
		for d := range docs {
			if sa, sb := a.Score(int32(d)), b.Score(int32(d)); math.Abs(float64(sa-sb)) > 1e-4 {
				t.Fatalf("%q doc %d: fields %v, one field %v", q, d, sa, sb)
			}
		}
		a.Release()
		b.Release()
	}
}

func TestLexical_Filter(t *testing.T) {
	docs := lexCorpus(3, 2000)
	x := buildLex(t, DefaultLexicalConfig(), docs)
	q := x.Parse("wine")
	all := x.Search(q, len(docs), nil)
	defer all.Release()
	calls := 0
	keep := func(d int32) bool { calls++; return d%50 == 0 }
	passing := 0
	for _, h := range all.Hits {
		if keep(h.ID) {
			passing++
		}
	}
	calls = 0
	r := x.Search(q, 10, keep)
	defer r.Release()
	if len(r.Hits) != min(10, passing) {
		t.Fatalf("selective filter: %d hits, %d matching documents pass", len(r.Hits), passing)
	}
	var want []LexicalHit
	for _, h := range all.Hits {
		if h.ID%50 == 0 {
			want = append(want, h)
		}
	}
	if !slices.Equal(r.Hits, want[:len(r.Hits)]) {
		t.Errorf("filtered hits %v, want the best passing %v", r.Hits, want[:len(r.Hits)])
	}
	if calls >= len(all.Hits) {
		t.Errorf("filter called %d times for %d matches: it should run only for would-be hits", calls, len(all.Hits))
	}
	calls = 0
	open := x.Search(q, 10, func(int32) bool { calls++; return true })
	defer open.Release()
	if !slices.Equal(open.Hits, all.Hits[:10]) || calls > 10+10/4+16 {
		t.Errorf("a filter passing everything: %d calls for k=10 (want at most %d), hits %v", calls, 10+10/4+16, open.Hits)
	}
}

func TestLexical_TitleShare(t *testing.T) {
	docs := [][NumFields]string{
		{FieldTitle: "Red Merlot", FieldDescription: "a red wine"},
		{FieldTitle: "Oak barrel", FieldDescription: "merlot aged in oak"},
		{FieldTitle: "Cable", FieldDescription: "usb"},
	}
	x := buildLex(t, DefaultLexicalConfig(), docs)
	q := x.Parse("red merlot zinfandel")
	if q.Words() != 3 {
		t.Fatalf("Words = %d, want 3 (unknown words count)", q.Words())
	}
	r := x.Search(q, 10, nil)
	defer r.Release()
	for d, want := range []float32{2.0 / 3, 0, 0} {
		if got := r.TitleShare(int32(d)); math.Abs(float64(got-want)) > 1e-6 {
			t.Errorf("doc %d: title share %v, want %v", d, got, want)
		}
	}
	t.Run("title weight 0 still tracks the title", func(t *testing.T) {
		cfg := DefaultLexicalConfig()
		cfg.Fields.Title = 0
		x := buildLex(t, cfg, docs)
		r := x.Search(x.Parse("red merlot zinfandel"), 10, nil)
		defer r.Release()
		if got := r.TitleShare(0); math.Abs(float64(got-2.0/3)) > 1e-6 {
			t.Errorf("title share %v, want 2/3", got)
		}
	})
	t.Run("released scratch is clean", func(t *testing.T) {
		r2 := x.Search(x.Parse("cable"), 10, nil)
		defer r2.Release()
		if r2.Score(0) != 0 || r2.TitleShare(0) != 0 {
			t.Errorf("doc 0 carries state from an earlier search: %v, %v", r2.Score(0), r2.TitleShare(0))
		}
	})
}

func TestLexical_Tune(t *testing.T) {
	docs := [][NumFields]string{{FieldTitle: "merlot"}, {FieldDescription: "merlot"}}
	x := buildLex(t, DefaultLexicalConfig(), docs)
	top := func() int32 {
		r := x.Search(x.Parse("merlot"), 1, nil)
		defer r.Release()
		return r.Hits[0].ID
	}
	if top() != 0 {
		t.Fatal("title weight 2: the title match should lead")
	}
	p := x.Params()
	p.Weights[FieldTitle], p.Weights[FieldDescription] = 1, 3
	if err := x.Tune(p); err != nil {
		t.Fatal(err)
	}
	if top() != 1 {
		t.Error("description weight 3: the description match should lead")
	}
	bad := p
	bad.K1 = 0
	if err := x.Tune(bad); err == nil {
		t.Error("k1 0 accepted")
	}
}

func TestLexical_Snapshot(t *testing.T) {
	docs := lexCorpus(4, 500)
	x := buildLex(t, DefaultLexicalConfig(), docs)
	path := filepath.Join(t.TempDir(), "lexical.snap")
	if err := x.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	y, err := LoadLexical(path)
	if err != nil {
		t.Fatal(err)
	}
	if y.Len() != x.Len() || y.Terms() != x.Terms() || y.Params() != x.Params() || y.Analyzer().Config() != x.Analyzer().Config() {
		t.Fatalf("loaded %d docs %d terms %+v, wrote %d %d %+v", y.Len(), y.Terms(), y.Params(), x.Len(), x.Terms(), x.Params())
	}
	for _, q := range []string{"red wine", "usb-c cable", "wooden toy"} {
		a, b := x.Search(x.Parse(q), 50, nil), y.Search(y.Parse(q), 50, nil)
		if !slices.Equal(a.Hits, b.Hits) {
			t.Errorf("%q: loaded index answers %v, built %v", q, b.Hits, a.Hits)
		}
		a.Release()
		b.Release()
	}

	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	t.Run("every flipped byte is refused", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 9))
		for range 300 {
			b := bytes.Clone(good)
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			if _, err := DecodeLexical(b); err == nil {
				t.Fatal("a damaged snapshot decoded")
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		if _, err := DecodeLexical(good[:len(good)-9]); !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
			t.Errorf("err = %v, want truncated or corrupt", err)
		}
	})
	t.Run("vector snapshot is not lexical", func(t *testing.T) {
		e := mustExact(t, 4, randomUnit(1, 3, 4))
		if _, err := DecodeLexical(encode(t, e)); !errors.Is(err, ErrBadMagic) {
			t.Errorf("err = %v, want bad magic", err)
		}
	})
}

func FuzzDecodeLexical(f *testing.F) {
	x, err := BuildLexical(context.Background(), DefaultLexicalConfig(), 3, func(d, fl int) string {
		return [][NumFields]string{{"red wine"}, {"usb-c cable", "", "", "", "long cable cable"}, {"toy"}}[d][fl]
	})
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		y, err := DecodeLexical(b)
		if err != nil {
			return
		}
		// Whatever decodes must search without a panic.
		r := y.Search(y.Parse("red cable usb-c toy"), 5, nil)
		r.Release()
	})
}

func TestItemField(t *testing.T) {
	it := catalog.Item{Title: "T", Brand: "B", Category: "C", Tags: []string{"x", "y"}, Description: "D"}
	var got []string
	for f := range NumFields {
		got = append(got, ItemField(&it, f))
	}
	if want := []string{"T", "B", "C", "x y", "D"}; !slices.Equal(got, want) {
		t.Errorf("fields %q, want %q", got, want)
	}
}

func BenchmarkLexical_Search(b *testing.B) {
	docs := lexCorpus(5, 100_000)
	x := buildLex(b, DefaultLexicalConfig(), docs)
	qs := []string{"red wine merlot", "wireless noise headphones", "usb-c cable", "wooden toy train", "smooth jazz guitar album"}
	parsed := make([]LexicalQuery, len(qs))
	for i, q := range qs {
		parsed[i] = x.Parse(q)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := x.Search(parsed[i%len(parsed)], 200, nil)
		r.Release()
	}
}
