package embed

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// foldTable maps common precomposed Latin letters to their base letters, so
// "Café" and "cafe" featurise alike. A table rather than Unicode
// decomposition keeps this dependency-free and allocation-free; letters not
// listed are kept as they are, which is still correct, only less forgiving.
var foldTable = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ã': "a", 'ä': "a", 'å': "a", 'ā': "a", 'ă': "a", 'ą': "a",
	'ç': "c", 'ć': "c", 'č': "c", 'ď': "d", 'đ': "d",
	'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ē': "e", 'ė': "e", 'ę': "e", 'ě': "e",
	'ğ': "g", 'ì': "i", 'í': "i", 'î': "i", 'ï': "i", 'ī': "i", 'į': "i", 'ı': "i",
	'ł': "l", 'ñ': "n", 'ń': "n", 'ň': "n",
	'ò': "o", 'ó': "o", 'ô': "o", 'õ': "o", 'ö': "o", 'ø': "o", 'ō': "o", 'ő': "o",
	'ř': "r", 'ś': "s", 'š': "s", 'ş': "s", 'ß': "ss", 'ť': "t", 'ţ': "t",
	'ù': "u", 'ú': "u", 'û': "u", 'ü': "u", 'ū': "u", 'ů': "u", 'ű': "u", 'ų': "u",
	'ý': "y", 'ÿ': "y", 'ź': "z", 'ż': "z", 'ž': "z",
	'æ': "ae", 'œ': "oe", 'þ': "th", 'ð': "d",
}

// appendFolded appends the normalised form of one letter or digit.
func appendFolded(dst []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		// ASCII is most text; skip the Unicode tables for it.
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(dst, byte(r))
	}
	r = unicode.ToLower(r)
	if s, ok := foldTable[r]; ok {
		return append(dst, s...)
	}
	return utf8.AppendRune(dst, r)
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// MaxWordRunes truncates longer words. Real words are far shorter; what is
// longer (tokens, encoded blobs, runs of letters) would otherwise cost
// features and time in proportion to its length.
const MaxWordRunes = 64

// nextWord scans text from byte offset pos and returns the next normalised
// word (written into buf, which the caller reuses) and the offset after it.
// An empty word means the text is exhausted. Combining marks (as in a
// decomposed "é") are dropped rather than treated as separators, so an
// accent never splits a word.
func nextWord(text string, pos int, buf []byte) (word []byte, next int) {
	word = buf[:0]
	runes := 0
	for pos < len(text) {
		r, size := utf8.DecodeRuneInString(text[pos:])
		switch {
		case isWordRune(r):
			if runes < MaxWordRunes {
				// Count output runes, not input ones: folding can expand
				// ("æ" -> "ae"), and the cap must cut a normalised word at
				// the same place the original was cut.
				before := len(word)
				word = appendFolded(word, r)
				runes += utf8.RuneCount(word[before:])
				for runes > MaxWordRunes {
					_, size := utf8.DecodeLastRune(word)
					word = word[:len(word)-size]
					runes--
				}
			}
		case unicode.Is(unicode.Mn, r):
		default:
			if len(word) > 0 {
				return word, pos + size
			}
		}
		pos += size
	}
	return word, pos
}

// Normalize returns text as the featurizer sees it: lowercased, common
// accents folded, words of letters and digits separated by single spaces.
// Two texts with the same normal form featurise identically, which makes
// it the right key for caching embeddings.
func Normalize(text string) string {
	var sb strings.Builder
	sb.Grow(len(text))
	buf := make([]byte, 0, 32)
	for pos := 0; ; {
		var w []byte
		w, pos = nextWord(text, pos, buf)
		if len(w) == 0 {
			return sb.String()
		}
		buf = w
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.Write(w)
	}
}
