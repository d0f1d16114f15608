package index

import (
	"slices"
	"strings"
	"testing"
)

// marked renders a term stream with uncounted terms in brackets.
func marked(an *Analyzer, text string, query bool) []string {
	var out []string
	emit := func(t string, counted bool) {
		if !counted {
			t = "[" + t + "]"
		}
		out = append(out, t)
	}
	if query {
		an.AnalyzeQuery(text, emit)
	} else {
		an.Analyze(text, emit)
	}
	return out
}

func TestAnalyzer_Analyze(t *testing.T) {
	an, err := NewAnalyzer(DefaultAnalyzerConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text string
		want       []string
	}{
		{"stems and stops", "The children's toys are running", []string{"children", "toi", "run"}},
		{"model number kept whole, parts split", "Sony WH-1000XM5", []string{"soni", "[wh-1000xm5]", "wh", "1000xm5"}},
		{"usb-c", "USB-C cable", []string{"[usb-c]", "usb", "c", "cabl"}},
		{"compound is not stemmed", "noise-cancelling", []string{"[noise-cancelling]", "nois", "cancel"}},
		{"slash joins", "1/2 inch", []string{"[1/2]", "1", "2", "inch"}},
		{"accents folded", "Café crème BRÛLÉE", []string{"cafe", "creme", "brule"}},
		{"full-width forms normalised", "ＵＳＢ", []string{"usb"}},
		{"decimal stays one token", "2.5m cable", []string{"2.5m", "cabl"}},
		{"hyphen with spaces is no joiner", "red - wine", []string{"red", "wine"}},
		{"only stopwords", "the of and", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := marked(an, tt.text, false); !slices.Equal(got, tt.want) {
				t.Errorf("Analyze(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestAnalyzer_AnalyzeQuery(t *testing.T) {
	an, err := NewAnalyzer(DefaultAnalyzerConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Pairs are joined before stemming, so "noise cancelling" asks for the
	// stem of "noisecancelling", which is what a catalog spelling it as
	// one word indexes.
	got := marked(an, "noise cancelling headphones", true)
	want := []string{"nois", "[noisecancel]", "cancel", "[cancellingheadphon]", "headphon"}
	if !slices.Equal(got, want) {
		t.Errorf("AnalyzeQuery = %q, want %q", got, want)
	}
	one := an.Terms("noisecancelling")
	if !slices.Contains(got, "["+one[0]+"]") {
		t.Errorf("the pair %q is not the indexed one-word form %q", got, one)
	}
	if doc := marked(an, "noise cancelling", false); slices.ContainsFunc(doc, func(s string) bool { return strings.HasPrefix(s, "[") }) {
		t.Errorf("documents get no pairs: %q", doc)
	}
}

func TestAnalyzer_Config(t *testing.T) {
	plain, err := NewAnalyzer(AnalyzerConfig{Stopwords: StopNone, Stemmer: StemNone})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plain.Terms("The running dogs"), []string{"the", "running", "dogs"}; !slices.Equal(got, want) {
		t.Errorf("no stopwords, no stemmer: %q, want %q", got, want)
	}
	for _, bad := range []AnalyzerConfig{{Stopwords: "klingon", Stemmer: StemPorter}, {Stopwords: StopEnglish, Stemmer: "snowball"}} {
		if _, err := NewAnalyzer(bad); err == nil {
			t.Errorf("NewAnalyzer(%+v) accepted", bad)
		}
	}
}

func FuzzAnalyzer(f *testing.F) {
	an, err := NewAnalyzer(DefaultAnalyzerConfig())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"WH-1000XM5", "a-b-c-d-e-f-g", "—-—", "\xff\xfe", "ｱｲｳ", "x/", "-x", "1.2.3-4/5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		an.AnalyzeQuery(s, func(term string, _ bool) {
			if term == "" {
				t.Fatalf("empty term from %q", s)
			}
		})
	})
}
