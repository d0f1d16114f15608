package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidationError_Error(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		wantHas  []string
		wantNot  []string
		wantLine int // number of lines in the message
	}{
		{name: "one", n: 1, wantHas: []string{"1 problem\n", "line 1 (id \"id-1\"): title: empty"}, wantLine: 2},
		{name: "exactly twenty", n: 20, wantHas: []string{"20 problems", "line 20 "}, wantNot: []string{"more"}, wantLine: 21},
		{name: "more than twenty", n: 25, wantHas: []string{"25 problems", "line 20 ", "and 5 more"}, wantNot: []string{"line 21 "}, wantLine: 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &ValidationError{}
			for i := 1; i <= tt.n; i++ {
				e.Problems = append(e.Problems, Problem{Line: i, ID: fmt.Sprintf("id-%d", i), Field: "title", Reason: "empty"})
			}
			msg := e.Error()
			for _, s := range tt.wantHas {
				if !strings.Contains(msg, s) {
					t.Errorf("message lacks %q:\n%s", s, msg)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(msg, s) {
					t.Errorf("message has %q:\n%s", s, msg)
				}
			}
			if got := strings.Count(msg, "\n") + 1; got != tt.wantLine {
				t.Errorf("message has %d lines, want %d:\n%s", got, tt.wantLine, msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func(id string) Item {
		return Item{ID: id, Title: "T " + id, Available: true, CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	with := func(it Item, f func(*Item)) Item { f(&it); return it }
	tests := []struct {
		name  string
		items []Item
		want  []problemKey
	}{
		{name: "valid", items: []Item{ok("a"), ok("b")}},
		{name: "empty", items: nil, want: nil},
		{
			name:  "infinite price and NaN popularity",
			items: []Item{ok("a"), with(ok("b"), func(it *Item) { it.Price = math.Inf(1); it.Popularity = math.NaN() })},
			want:  []problemKey{{2, "price", "not finite"}, {2, "popularity", "not finite"}},
		},
		{
			name:  "zero created_at",
			items: []Item{with(ok("a"), func(it *Item) { it.CreatedAt = time.Time{} })},
			want:  []problemKey{{1, "created_at", "missing"}},
		},
		{
			name:  "invalid UTF-8 id is not echoed",
			items: []Item{with(ok("a"), func(it *Item) { it.ID = "a\xffb" })},
			want:  []problemKey{{1, "id", "UTF-8"}},
		},
		{
			name:  "duplicate",
			items: []Item{ok("a"), ok("b"), ok("a")},
			want:  []problemKey{{3, "id", "duplicate of line 1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.items)
			switch {
			case len(tt.items) == 0:
				if !errors.Is(err, ErrEmpty) {
					t.Errorf("error = %v, want ErrEmpty", err)
				}
			case tt.want == nil:
				if err != nil {
					t.Errorf("error = %v, want nil", err)
				}
			default:
				checkProblems(t, err, tt.want)
				if bytes.ContainsRune([]byte(err.Error()), 0xFFFD) || strings.Contains(err.Error(), "\xff") {
					t.Errorf("message echoes an invalid id: %q", err.Error())
				}
			}
		})
	}
}

func TestJSONLWriter_Write(t *testing.T) {
	items := []Item{
		{ID: "a", Title: "Fish & <Chips>", Tags: []string{"x"}, Price: 1.5, AgeRating: 7, Available: false,
			CreatedAt: time.Date(2025, 6, 1, 12, 30, 0, 123, time.UTC), Popularity: 3},
		{ID: "b", Title: "B", Available: true, CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	var buf bytes.Buffer
	w := NewJSONLWriter(&buf)
	for _, it := range items {
		if err := w.Write(it); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("writer did not buffer: %d bytes before Flush", buf.Len())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Fish & <Chips>") {
		t.Errorf("HTML characters were escaped: %s", buf.String())
	}
	if n := strings.Count(buf.String(), "\n"); n != len(items) {
		t.Errorf("got %d lines, want %d", n, len(items))
	}
	got, err := Read(&buf, JSONL)
	if err != nil {
		t.Fatal(err)
	}
	assertSameItems(t, got, items)

	t.Run("non-finite price is an error", func(t *testing.T) {
		err := WriteJSONL(&bytes.Buffer{}, []Item{{ID: "n", Title: "N", Price: math.NaN()}})
		if err == nil || !strings.Contains(err.Error(), `id "n"`) {
			t.Errorf("error = %v, want one naming the item", err)
		}
	})
}

// assertSameItems compares items, times by instant: a round trip through
// text may change a time's location but must not change its instant.
func assertSameItems(t *testing.T, got, want []Item) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d items, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("item %d created_at = %v, want %v", i, g.CreatedAt, w.CreatedAt)
		}
		g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
		if len(g.Tags) == 0 && len(w.Tags) == 0 {
			g.Tags, w.Tags = nil, nil
		}
		if fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", w) {
			t.Errorf("item %d:\n got %#v\nwant %#v", i, g, w)
		}
	}
}
