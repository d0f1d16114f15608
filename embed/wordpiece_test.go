package embed

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// miniLMDir holds the real all-MiniLM-L6-v2 tokenizer files, shared by the
// project and never copied into the repository.
const miniLMDir = "../../shared/models/all-MiniLM-L6-v2-tokenizer"

func openMiniLMVocab(t testing.TB) *WordPiece {
	t.Helper()
	path := filepath.Join(miniLMDir, "vocab.txt")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("real vocabulary not available (%v); it lives in ../shared/models", err)
	}
	wp, err := OpenWordPiece(context.Background(), path, DefaultWordPieceConfig())
	if err != nil {
		t.Fatal(err)
	}
	return wp
}

type goldenCase struct {
	Text   string   `json:"text"`
	IDs    []int32  `json:"ids"`
	Tokens []string `json:"tokens"`
}

func readGolden(t testing.TB) []goldenCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/wordpiece/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g.Cases
}

// TestWordPiece_Encode_Golden compares every golden case produced by
// transformers.js (testdata/wordpiece/gen.mjs) with the real vocabulary.
func TestWordPiece_Encode_Golden(t *testing.T) {
	wp := openMiniLMVocab(t)
	cases := readGolden(t)
	if len(cases) < 200 {
		t.Fatalf("golden file has %d cases, want >= 200", len(cases))
	}
	for i, c := range cases {
		got := wp.Encode(c.Text, 0)
		if !slices.Equal(got, c.IDs) {
			gotTok := make([]string, len(got))
			for k, id := range got {
				gotTok[k] = wp.Token(id)
			}
			t.Errorf("case %d %q:\n got  %v\n want %v", i, c.Text, gotTok, c.Tokens)
		}
	}
}

func TestWordPiece_Tokenize(t *testing.T) {
	vocab := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "a", "##b",
		",", "!", "中", "文", "cafe", "σοφος", "ς", "[", "sep", "]", "𠀀", "x"}
	wp, err := NewWordPiece(vocab, DefaultWordPieceConfig())
	if err != nil {
		t.Fatal(err)
	}
	cased := DefaultWordPieceConfig()
	cased.Lowercase, cased.StripAccents = false, false
	wpCased, err := NewWordPiece(vocab, cased)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		wp   *WordPiece
		in   string
		want []string
	}{
		{"greedy longest match", wp, "unaffable", []string{"un", "##aff", "##able"}},
		{"unmatchable tail makes the whole word unknown", wp, "unaffz", []string{"[UNK]"}},
		{"punctuation splits", wp, "un,aff!", []string{"un", ",", "aff", "!"}},
		{"lowercase and accents", wp, "CAFÉ", []string{"cafe"}},
		{"decomposed accent", wp, "cafe\u0301", []string{"cafe"}},
		{"cased keeps capitals unknown", wpCased, "CAFE", []string{"[UNK]"}},
		{"cjk split without spaces", wp, "中文", []string{"中", "文"}},
		// transformers.js does not split astral ideographs (it tests UTF-16
		// code units), so this BERT behaviour is checked here, not in goldens.
		{"astral cjk split", wp, "x𠀀x", []string{"x", "𠀀", "x"}},
		{"final sigma", wp, "ΣΟΦΟΣ", []string{"σοφος"}},
		{"special token text stays text", wp, "[SEP]", []string{"[", "sep", "]"}},
		{"controls dropped", wp, "a\u0000\u200bb", []string{"a", "##b"}},
		{"over-long word", wp, strings.Repeat("a", 101), []string{"[UNK]"}},
		{"empty", wp, " \t\n", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.wp.Tokenize(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Tokenize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestWordPiece_Encode_Truncates(t *testing.T) {
	wp := openMiniLMVocab(t)
	full := wp.Encode("the quick brown fox jumps over the lazy dog", 0)
	for _, maxLen := range []int{2, 3, 5, len(full), len(full) + 4} {
		got := wp.Encode("the quick brown fox jumps over the lazy dog", maxLen)
		want := min(maxLen, len(full))
		if len(got) != want || got[0] != wp.cls || got[len(got)-1] != wp.sep {
			t.Errorf("maxLen %d: got %v", maxLen, got)
		}
		if !slices.Equal(got[:len(got)-1], full[:len(got)-1]) {
			t.Errorf("maxLen %d: %v is not a prefix of %v", maxLen, got, full)
		}
	}
}

func TestNewWordPiece_Errors(t *testing.T) {
	tests := []struct {
		name  string
		vocab []string
		cfg   func(*WordPieceConfig)
		want  string
	}{
		{"empty vocab", nil, nil, "empty vocabulary"},
		{"duplicate", []string{"[PAD]", "a", "a"}, nil, `token "a" appears twice`},
		{"missing specials", []string{"[PAD]", "a"}, nil, `unk_token: "[UNK]" is not in the vocabulary`},
		{"bad limit", []string{"a"}, func(c *WordPieceConfig) { c.MaxInputCharsPerWord = 0 }, "max_input_chars_per_word: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultWordPieceConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			_, err := NewWordPiece(tt.vocab, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestReadVocab(t *testing.T) {
	got, err := ReadVocab(strings.NewReader("[PAD]\r\n\nb\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The blank line inside holds id 1; trailing blank lines are dropped.
	if want := []string{"[PAD]", "", "b"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ReadVocab(strings.NewReader("ok\n\xff\n")); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}

// FuzzWordPiece_Encode checks invariants on arbitrary input: the output is
// framed by [CLS]/[SEP] within the maxLen bound, pieces are non-empty valid
// UTF-8, the first piece is never a continuation, and Encode agrees with
// AppendIDs.
func FuzzWordPiece_Encode(f *testing.F) {
	for _, c := range readGolden(f)[:40] {
		f.Add(c.Text, 16)
	}
	f.Add("\xff\xfe invalid utf8", 8)
	vocab, err := os.ReadFile(filepath.Join(miniLMDir, "vocab.txt"))
	var wp *WordPiece
	if err == nil {
		v, rerr := ReadVocab(strings.NewReader(string(vocab)))
		if rerr != nil {
			f.Fatal(rerr)
		}
		wp, err = NewWordPiece(v, DefaultWordPieceConfig())
	} else {
		// Without the shared files, a tiny vocabulary still exercises the
		// code paths.
		wp, err = NewWordPiece([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "##a", "b", "##b", "."}, DefaultWordPieceConfig())
	}
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string, maxLen int) {
		maxLen = 1 + int(uint(maxLen)%64)
		ids := wp.Encode(text, maxLen)
		if len(ids) < 2 || len(ids) > max(maxLen, 2) || ids[0] != wp.cls || ids[len(ids)-1] != wp.sep {
			t.Fatalf("bad framing for %q (maxLen %d): %v", text, maxLen, ids)
		}
		pieces := wp.Tokenize(text)
		for i, p := range pieces {
			if p == "" {
				t.Fatalf("empty piece in %q", pieces)
			}
			if i == 0 && strings.HasPrefix(p, continuation) && len(p) > len(continuation) {
				t.Fatalf("%q starts with a continuation: %q", text, pieces)
			}
			if !utf8.ValidString(p) {
				t.Fatalf("invalid UTF-8 piece %q", p)
			}
		}
		if got := wp.Encode(text, 0); !slices.Equal(got[1:len(got)-1], wp.AppendIDs(nil, text)) {
			t.Fatalf("Encode and AppendIDs disagree on %q", text)
		}
	})
}

func BenchmarkWordPiece_Encode(b *testing.B) {
	wp := openMiniLMVocab(b)
	texts := readGolden(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = wp.Encode(texts[i%len(texts)].Text, 128)
	}
}
