package embed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// WordPieceConfig configures BERT tokenisation. The zero value is not
// useful; start from DefaultWordPieceConfig, which matches the uncased
// BERT vocabularies (all-MiniLM-L6-v2, bert-base-uncased).
type WordPieceConfig struct {
	// Lowercase lowercases text before splitting (uncased vocabularies).
	Lowercase bool `json:"lowercase" yaml:"lowercase"`
	// StripAccents removes combining marks after NFD decomposition. BERT
	// strips accents whenever it lowercases unless told otherwise.
	StripAccents bool `json:"strip_accents" yaml:"strip_accents"`
	// MaxInputCharsPerWord turns longer words (in runes) into the unknown
	// token rather than running the quadratic longest-match on them.
	MaxInputCharsPerWord int `json:"max_input_chars_per_word" yaml:"max_input_chars_per_word"`
	// Special token spellings, looked up in the vocabulary.
	Unknown string `json:"unk_token" yaml:"unk_token"`
	CLS     string `json:"cls_token" yaml:"cls_token"`
	SEP     string `json:"sep_token" yaml:"sep_token"`
	PAD     string `json:"pad_token" yaml:"pad_token"`
}

// DefaultWordPieceConfig returns the settings of uncased BERT models.
func DefaultWordPieceConfig() WordPieceConfig {
	return WordPieceConfig{
		Lowercase:            true,
		StripAccents:         true,
		MaxInputCharsPerWord: 100,
		Unknown:              "[UNK]",
		CLS:                  "[CLS]",
		SEP:                  "[SEP]",
		PAD:                  "[PAD]",
	}
}

// Validate reports every invalid field.
func (c WordPieceConfig) Validate() error {
	var errs []error
	if c.MaxInputCharsPerWord <= 0 {
		errs = append(errs, errors.New("max_input_chars_per_word: must be > 0"))
	}
	for _, f := range []struct{ key, v string }{
		{"unk_token", c.Unknown}, {"cls_token", c.CLS}, {"sep_token", c.SEP}, {"pad_token", c.PAD},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s: must be set", f.key))
		}
	}
	return errors.Join(errs...)
}

// continuation marks a piece that continues a word.
const continuation = "##"

// WordPiece is BERT's tokeniser: basic tokenisation (cleaning, CJK and
// punctuation splitting, lowercasing, accent stripping) followed by greedy
// longest-match-first WordPiece over a fixed vocabulary. It is immutable
// and safe for concurrent use.
//
// Text is always treated as text: a literal "[SEP]" in user input is
// split into "[", "sep", "]" rather than becoming the separator token, so
// input cannot forge the model's structural tokens.
type WordPiece struct {
	cfg                WordPieceConfig
	vocab              map[string]int32
	tokens             []string
	unk, cls, sep, pad int32
}

// NewWordPiece builds a tokeniser over vocab, where a token's id is its
// index (the layout of vocab.txt).
func NewWordPiece(vocab []string, cfg WordPieceConfig) (*WordPiece, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("wordpiece config: %w", err)
	}
	if len(vocab) == 0 {
		return nil, errors.New("wordpiece: empty vocabulary")
	}
	t := &WordPiece{cfg: cfg, vocab: make(map[string]int32, len(vocab)), tokens: vocab}
	for i, tok := range vocab {
		if _, dup := t.vocab[tok]; dup {
			// BERT's loader keeps the last id; a duplicate is nearly always
			// a damaged file, so say so instead of guessing.
			return nil, fmt.Errorf("wordpiece: token %q appears twice (lines %d and %d)", tok, t.vocab[tok]+1, i+1)
		}
		t.vocab[tok] = int32(i)
	}
	var errs []error
	special := func(key, tok string) int32 {
		id, ok := t.vocab[tok]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %q is not in the vocabulary", key, tok))
		}
		return id
	}
	t.unk = special("unk_token", cfg.Unknown)
	t.cls = special("cls_token", cfg.CLS)
	t.sep = special("sep_token", cfg.SEP)
	t.pad = special("pad_token", cfg.PAD)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("wordpiece: %w", err)
	}
	return t, nil
}

// ReadVocab reads a vocab.txt: one token per line, the id being the line
// number from 0. Trailing carriage returns are dropped; blank lines are
// kept, since they hold ids.
func ReadVocab(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), 1<<20)
	var vocab []string
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("read vocab: line %d is not valid UTF-8", len(vocab)+1)
		}
		vocab = append(vocab, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read vocab: %w", err)
	}
	// A final empty line is the file's trailing newline, not a token.
	for len(vocab) > 0 && vocab[len(vocab)-1] == "" {
		vocab = vocab[:len(vocab)-1]
	}
	return vocab, nil
}

// OpenWordPiece reads the vocabulary file at path.
func OpenWordPiece(ctx context.Context, path string, cfg WordPieceConfig) (*WordPiece, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open wordpiece vocab: %w", err)
	}
	defer f.Close()
	vocab, err := ReadVocab(f)
	if err != nil {
		return nil, fmt.Errorf("open wordpiece vocab %s: %w", path, err)
	}
	t, err := NewWordPiece(vocab, cfg)
	if err != nil {
		return nil, fmt.Errorf("open wordpiece vocab %s: %w", path, err)
	}
	return t, nil
}

// VocabSize returns the number of tokens.
func (t *WordPiece) VocabSize() int { return len(t.tokens) }

// Token returns the spelling of id, or "" when out of range.
func (t *WordPiece) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// PadID returns the padding token's id.
func (t *WordPiece) PadID() int32 { return t.pad }

// Tokenize returns the word pieces of text, without special tokens.
func (t *WordPiece) Tokenize(text string) []string {
	ids := t.AppendIDs(nil, text)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.tokens[id]
	}
	return out
}

// Encode returns [CLS] pieces [SEP], truncated so the result has at most
// maxLen ids (maxLen <= 0 means no limit; below 2 it counts as 2, since
// the frame itself takes two).
func (t *WordPiece) Encode(text string, maxLen int) []int32 {
	ids := append(make([]int32, 0, 16), t.cls)
	ids = t.AppendIDs(ids, text)
	if maxLen > 0 && len(ids) > max(maxLen, 2)-1 {
		ids = ids[:max(maxLen, 2)-1]
	}
	return append(ids, t.sep)
}

// AppendIDs appends the piece ids of text to dst.
func (t *WordPiece) AppendIDs(dst []int32, text string) []int32 {
	var piece []byte
	for _, word := range t.basicTokens(text) {
		dst, piece = t.appendWord(dst, word, piece)
	}
	return dst
}

// appendWord runs greedy longest-match-first over one basic token. A word
// with any unmatchable remainder becomes a single unknown token, as in BERT.
func (t *WordPiece) appendWord(dst []int32, word string, buf []byte) ([]int32, []byte) {
	if utf8.RuneCountInString(word) > t.cfg.MaxInputCharsPerWord {
		return append(dst, t.unk), buf
	}
	mark := len(dst)
	for start := 0; start < len(word); {
		found := false
		for end := len(word); end > start; {
			buf = buf[:0]
			if start > 0 {
				buf = append(buf, continuation...)
			}
			buf = append(buf, word[start:end]...)
			// The string(buf) conversion in a map index does not allocate.
			if id, ok := t.vocab[string(buf)]; ok {
				dst = append(dst, id)
				start, found = end, true
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if !found {
			return append(dst[:mark], t.unk), buf
		}
	}
	return dst, buf
}

// basicTokens applies BERT's normaliser and pre-tokeniser in the order
// BERT does: clean (drop controls, map whitespace to a space), surround CJK
// ideographs with spaces, lowercase, strip accents, then split on
// whitespace and emit each punctuation character as its own token.
func (t *WordPiece) basicTokens(text string) []string {
	var sb strings.Builder
	sb.Grow(len(text) + 8)
	for _, r := range text {
		switch {
		case r == 0 || r == utf8.RuneError || isBertControl(r):
		case isBertSpace(r):
			sb.WriteByte(' ')
		case isCJK(r):
			sb.WriteByte(' ')
			sb.WriteRune(r)
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	s := sb.String()
	if t.cfg.Lowercase {
		s = lowerFull(s)
	}
	if t.cfg.StripAccents && !isASCII(s) {
		s = stripMarks(norm.NFD.String(s))
	}

	var out []string
	wordStart := -1
	for i, r := range s {
		switch {
		case isBertSpace(r):
			if wordStart >= 0 {
				out = append(out, s[wordStart:i])
				wordStart = -1
			}
		case isBertPunct(r):
			if wordStart >= 0 {
				out = append(out, s[wordStart:i])
				wordStart = -1
			}
			out = append(out, s[i:i+utf8.RuneLen(r)])
		default:
			if wordStart < 0 {
				wordStart = i
			}
		}
	}
	if wordStart >= 0 {
		out = append(out, s[wordStart:])
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func stripMarks(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

// lowerFull lowercases with the two context rules of Unicode's full case
// mapping that BERT's reference implementations apply and Go's
// strings.ToLower does not: capital sigma at the end of a word becomes
// final sigma, and dotted capital I becomes "i" plus a combining dot.
func lowerFull(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for i, r := range s {
		switch r {
		case 'Σ':
			if finalSigma(s, i) {
				sb.WriteRune('ς')
			} else {
				sb.WriteRune('σ')
			}
		case 'İ':
			sb.WriteString("i\u0307")
		default:
			sb.WriteRune(unicode.ToLower(r))
		}
	}
	return sb.String()
}

// finalSigma is Unicode's Final_Sigma condition for the sigma at byte i:
// a cased letter before it and none after it, skipping case-ignorable
// characters in both directions.
func finalSigma(s string, i int) bool {
	before := false
	for j := i; j > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if caseIgnorable(r) {
			continue
		}
		before = cased(r)
		break
	}
	if !before {
		return false
	}
	for j := i + utf8.RuneLen('Σ'); j < len(s); {
		r, size := utf8.DecodeRuneInString(s[j:])
		j += size
		if caseIgnorable(r) {
			continue
		}
		return !cased(r)
	}
	return true
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r)
}

// caseIgnorable is Unicode's Case_Ignorable property: marks, format
// characters, modifiers, and the Word_Break MidLetter, MidNumLet and
// Single_Quote characters.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '\u00b7', '\u0387', '\u055f', '\u05f4', '\u2018', '\u2019', '\u2024',
		'\u2027', '\ufe13', '\ufe52', '\ufe55', '\uff07', '\uff0e', '\uff1a':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// isBertControl matches what BERT's cleaner drops: control, format,
// private-use and surrogate characters, except the three whitespace
// controls.
func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

// isBertSpace matches the whitespace BERT splits on: tab, newline,
// carriage return and the Unicode space separators, plus line and
// paragraph separators, which every implementation also splits on.
func isBertSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\u2028', '\u2029':
		return true
	}
	return r > utf8.RuneSelf && unicode.Is(unicode.Zs, r)
}

// isBertPunct is BERT's punctuation: every ASCII non-alphanumeric printable
// character (so "$", "+" and "^" split although Unicode calls them symbols)
// and every Unicode punctuation character.
func isBertPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126
	}
	return unicode.IsPunct(r)
}

// isCJK is BERT's "Chinese character" test: the CJK Unified Ideographs
// blocks and their extensions and compatibility blocks. Hiragana, Katakana
// and Hangul are not included, as in BERT.
func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF ||
		r >= 0x3400 && r <= 0x4DBF ||
		r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F ||
		r >= 0x2B740 && r <= 0x2B81F ||
		r >= 0x2B820 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF ||
		r >= 0x2F800 && r <= 0x2FA1F
}
