package catalog

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIDLen bounds an item id in bytes. Ids travel in URLs, Redis keys and
// Kafka events, so an unbounded id is a liability everywhere downstream.
const MaxIDLen = 256

// MaxAgeRating is the highest accepted age rating (the oldest age threshold
// any jurisdiction uses).
const MaxAgeRating = 21

// maxListed is how many problems ValidationError.Error spells out; the rest
// are counted, so a catalog with a systematic fault does not produce a
// megabyte-long error string.
const maxListed = 20

// ErrEmpty is returned when a catalog holds no items at all: an empty
// catalog is never what a build wants and usually means a truncated export.
var ErrEmpty = errors.New("catalog is empty")

// Problem is one fault found in a catalog. Line is 1-based: the line of the
// file for the readers, the position in the slice for Validate.
type Problem struct {
	Line   int
	ID     string // the item's id when it could be read, else ""
	Field  string // the offending field ("" when the whole line is at fault)
	Reason string
}

func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d", p.Line)
	if p.ID != "" {
		fmt.Fprintf(&b, " (id %q)", truncate(p.ID, 40))
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// ValidationError carries every problem found in a catalog. Readers return
// it instead of dropping rows, so whoever fixes the export sees all of the
// faults in one pass.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	if n == 1 {
		b.WriteString("invalid catalog: 1 problem")
	} else {
		fmt.Fprintf(&b, "invalid catalog: %d problems", n)
	}
	for i, p := range e.Problems {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  and %d more", n-maxListed)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Validate applies the validation gate to items that did not come through
// a reader (for example converted from another dataset). Problem.Line is the
// 1-based position in items.
func Validate(items []Item) error {
	if len(items) == 0 {
		return ErrEmpty
	}
	c := newChecker()
	for i := range items {
		c.check(i+1, &items[i], 0)
	}
	return c.err()
}

// checker accumulates problems across a catalog. It remembers the line of
// every id it has seen, which is what lets a duplicate name its original;
// a checker of one item (a zero checker) remembers none.
type checker struct {
	seen     map[string]int
	problems []Problem
}

func newChecker() *checker {
	return &checker{seen: make(map[string]int)}
}

func (c *checker) add(line int, id, field, reason string) {
	c.problems = append(c.problems, Problem{Line: line, ID: id, Field: field, Reason: reason})
}

func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: c.problems}
}

// fieldSet marks fields whose raw value a reader already reported as
// undecodable, so check does not report the same field twice (an
// unparseable created_at is not also "missing").
type fieldSet uint8

const (
	fPrice fieldSet = 1 << iota
	fAgeRating
	fPopularity
	fCreatedAt
)

// check validates one decoded item. Readers add decoding problems first and
// pass the fields they already reported in bad.
func (c *checker) check(line int, it *Item, bad fieldSet) {
	id := it.ID
	if reason := idProblem(id); reason != "" {
		shown := id
		if !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl) {
			shown = "" // such an id must not reach logs and terminals verbatim
		}
		c.add(line, shown, "id", reason)
		id = shown
	} else if c.seen == nil {
		// one item (Check, Patch): nothing to be a duplicate of
	} else if first, dup := c.seen[id]; dup {
		c.add(line, id, "id", fmt.Sprintf("duplicate of line %d", first))
	} else {
		c.seen[id] = line
	}
	if strings.TrimSpace(it.Title) == "" {
		c.add(line, id, "title", "empty")
	}
	if bad&fPrice == 0 {
		checkNumber(c, line, id, "price", it.Price)
	}
	if bad&fPopularity == 0 {
		checkNumber(c, line, id, "popularity", it.Popularity)
	}
	if bad&fAgeRating == 0 && (it.AgeRating < 0 || it.AgeRating > MaxAgeRating) {
		c.add(line, id, "age_rating", fmt.Sprintf("%d is outside 0..%d", it.AgeRating, MaxAgeRating))
	}
	if bad&fCreatedAt == 0 && it.CreatedAt.IsZero() {
		c.add(line, id, "created_at", "missing")
	}
}

func checkNumber(c *checker, line int, id, field string, v float64) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		c.add(line, id, field, fmt.Sprintf("%v is not finite", v))
	case v < 0:
		c.add(line, id, field, fmt.Sprintf("%v is negative", v))
	}
}

// IDProblem returns why id cannot name an item, or "".
func IDProblem(id string) string { return idProblem(id) }

// idProblem returns why id is unacceptable, or "".
func idProblem(id string) string {
	switch {
	case strings.TrimSpace(id) == "":
		return "missing"
	case len(id) > MaxIDLen:
		return fmt.Sprintf("longer than %d bytes (%d)", MaxIDLen, len(id))
	case !utf8.ValidString(id):
		return "not valid UTF-8"
	case strings.ContainsFunc(id, unicode.IsControl):
		return "contains control characters"
	}
	return ""
}

// safeID returns id when it is fit to appear in a problem, else "".
func safeID(id string) string {
	if idProblem(id) != "" {
		return ""
	}
	return id
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the message stays valid UTF-8.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
