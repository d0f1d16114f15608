package index

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/char/asciifolding"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/token/porter"
	"github.com/blevesearch/bleve/v2/analysis/token/stop"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"golang.org/x/text/unicode/norm"
)

// Stopword lists and stemmers an Analyzer can use.
const (
	// StopEnglish is the Snowball English list bleve ships (about 170 words).
	StopEnglish = "english"
	StopNone    = "none"

	StemPorter = "porter"
	StemNone   = "none"
)

// AnalyzerConfig chooses the analysis chain's language-dependent parts.
type AnalyzerConfig struct {
	Stopwords string `yaml:"stopwords"` // english | none
	Stemmer   string `yaml:"stemmer"`   // porter | none
}

// DefaultAnalyzerConfig is what config.yaml spells out: English stopwords
// and the Porter stemmer, the chain BM25 baselines are reported with.
func DefaultAnalyzerConfig() AnalyzerConfig {
	return AnalyzerConfig{Stopwords: StopEnglish, Stemmer: StemPorter}
}

// Validate names a bad field.
func (c AnalyzerConfig) Validate() error {
	var errs []error
	if c.Stopwords != StopEnglish && c.Stopwords != StopNone {
		errs = append(errs, fmt.Errorf("stopwords: must be %s or %s, got %q", StopEnglish, StopNone, c.Stopwords))
	}
	if c.Stemmer != StemPorter && c.Stemmer != StemNone {
		errs = append(errs, fmt.Errorf("stemmer: must be %s or %s, got %q", StemPorter, StemNone, c.Stemmer))
	}
	return errors.Join(errs...)
}

// maxCompoundParts bounds how many joined words make one kept-whole term;
// longer runs ("state-of-the-art-of-...") are prose, not model numbers.
const maxCompoundParts = 5

// Analyzer turns text into index terms with bleve's analysis components:
// NFKC normalisation and ASCII folding of accents, Unicode (UAX #29) word
// segmentation, English possessives removed, lower case, stopwords, Porter
// stemming. Words joined by a hyphen or a slash ("usb-c", "wh-1000xm5",
// "1/2") are also emitted whole, lower-cased but neither stopped nor
// stemmed, so a model number or SKU matches as typed. Those whole terms are
// extras at the position of their first part: they do not count towards a
// field's length, so document lengths are those of the plain word stream
// (Lucene's "discount overlaps").
//
// An Analyzer is immutable and safe for concurrent use.
type Analyzer struct {
	cfg       AnalyzerConfig
	fold      *asciifolding.AsciiFoldingFilter
	tokenizer *unicode.UnicodeTokenizer
	// prefix runs before query pairs are formed (possessives, lower
	// case), rest after (stopwords, stemming).
	prefix, rest []analysis.TokenFilter
}

// NewAnalyzer builds the chain cfg describes.
func NewAnalyzer(cfg AnalyzerConfig) (*Analyzer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	a := &Analyzer{cfg: cfg, fold: asciifolding.New(), tokenizer: unicode.NewUnicodeTokenizer()}
	a.prefix = []analysis.TokenFilter{en.NewPossessiveFilter(), lowercase.NewLowerCaseFilter()}
	if cfg.Stopwords == StopEnglish {
		words := analysis.NewTokenMap()
		if err := words.LoadBytes(en.EnglishStopWords); err != nil {
			return nil, fmt.Errorf("analyzer: stopwords: %w", err)
		}
		// Compounds hold a '-' or '/', which no stopword does, so they pass.
		a.rest = append(a.rest, stop.NewStopTokensFilter(words))
	}
	if cfg.Stemmer == StemPorter {
		a.rest = append(a.rest, porter.NewPorterStemmer())
	}
	return a, nil
}

// Config is the configuration the analyzer was built with.
func (a *Analyzer) Config() AnalyzerConfig { return a.cfg }

// Analyze calls emit for every term of text in order; counted is false for
// the kept-whole compounds, which do not add to the field length.
func (a *Analyzer) Analyze(text string, emit func(term string, counted bool)) {
	a.analyze(text, false, emit)
}

// AnalyzeQuery is Analyze for a query, which also emits each pair of
// adjacent words written as one ("noise cancelling" also asks for
// "noisecancel"), uncounted and stemmed like a word: catalogs spell
// compounds both ways, and a pair no item holds is simply not in the
// vocabulary.
func (a *Analyzer) AnalyzeQuery(text string, emit func(term string, counted bool)) {
	a.analyze(text, true, emit)
}

func (a *Analyzer) analyze(text string, pairs bool, emit func(term string, counted bool)) {
	if text == "" {
		return
	}
	in := norm.NFKC.Bytes([]byte(text))
	if !isASCII(in) {
		in = a.fold.Filter(in)
	}
	toks := a.tokenizer.Tokenize(in)
	toks = withCompounds(in, toks)
	for _, f := range a.prefix {
		toks = f.Filter(toks)
	}
	if pairs {
		toks = withPairs(toks)
	}
	for _, f := range a.rest {
		toks = f.Filter(toks)
	}
	for _, t := range toks {
		if len(t.Term) > 0 {
			emit(string(t.Term), !t.KeyWord && t.Type != analysis.Shingle)
		}
	}
}

// withPairs appends after each word the concatenation of it and the next
// word, as a shingle token.
func withPairs(toks analysis.TokenStream) analysis.TokenStream {
	var out analysis.TokenStream
	var prev *analysis.Token
	for _, t := range toks {
		if t.KeyWord {
			out = append(out, t)
			continue
		}
		if prev != nil && t.Position == prev.Position+1 {
			out = append(out, &analysis.Token{Term: append(append([]byte(nil), prev.Term...), t.Term...),
				Start: prev.Start, End: t.End, Position: prev.Position, Type: analysis.Shingle})
		}
		out = append(out, t)
		prev = t
	}
	return out
}

// Terms returns the analysed terms of text, compounds included.
func (a *Analyzer) Terms(text string) []string {
	var out []string
	a.Analyze(text, func(t string, _ bool) { out = append(out, t) })
	return out
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// withCompounds inserts, before each run of tokens joined by single '-' or
// '/' characters, one keyword token spanning the whole run.
func withCompounds(in []byte, toks analysis.TokenStream) analysis.TokenStream {
	var out analysis.TokenStream
	for i := 0; i < len(toks); {
		j := i
		for j+1 < len(toks) && j-i+1 < maxCompoundParts && joined(in, toks[j], toks[j+1]) {
			j++
		}
		if j == i {
			if out != nil {
				out = append(out, toks[i])
			}
			i++
			continue
		}
		if out == nil {
			out = append(make(analysis.TokenStream, 0, len(toks)+4), toks[:i]...)
		}
		out = append(out, &analysis.Token{Term: append([]byte(nil), in[toks[i].Start:toks[j].End]...),
			Start: toks[i].Start, End: toks[j].End, Position: toks[i].Position, Type: analysis.AlphaNumeric, KeyWord: true})
		out = append(out, toks[i:j+1]...)
		i = j + 1
	}
	if out == nil {
		return toks
	}
	return out
}

func joined(in []byte, a, b *analysis.Token) bool {
	if b.Start != a.End+1 {
		return false
	}
	c := in[a.End]
	return c == '-' || c == '/'
}
