package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func problems(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError, got %v", err)
	}
	return ve.Problems
}

func TestParseItem(t *testing.T) {
	it, err := ParseItem([]byte(`{"id":"a","title":"Red wine","price":9.5,"created_at":"2026-01-02T00:00:00Z"}`))
	if err != nil || it.ID != "a" || !it.Available || it.Price != 9.5 {
		t.Fatalf("ParseItem = %+v, %v", it, err)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"id":"a","title":"x","price":-1,"created_at":"2026-01-02T00:00:00Z"}`, "price"},
		{`{"id":"a","title":"x","colour":"red","created_at":"2026-01-02T00:00:00Z"}`, "colour"},
		{`{"id":"a","title":"","created_at":"2026-01-02T00:00:00Z"}`, "title"},
		{`{"id":"a","title":"x"}`, "created_at"},
		{``, ""},
	} {
		_, err := ParseItem([]byte(tc.body))
		if p := problems(t, err); len(p) != 1 || p[0].Field != tc.field {
			t.Errorf("%s: problems %+v, want one on %q", tc.body, p, tc.field)
		}
	}
}

func TestPatch(t *testing.T) {
	base := Item{ID: "a", Title: "Red wine", Tags: []string{"red"}, Price: 10, Available: true,
		CreatedAt: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
	it, err := Patch(base, []byte(`{"available":false,"price":12.5,"tags":["red","dry"],"created_at":"2026-02-03T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if it.Available || it.Price != 12.5 || strings.Join(it.Tags, ",") != "red,dry" || it.CreatedAt.Month() != 2 || it.Title != "Red wine" {
		t.Errorf("patched %+v", it)
	}
	it.Tags[0] = "changed"
	if base.Tags[0] != "red" {
		t.Error("the patched item shares the original's tags")
	}
	for _, tc := range []struct{ patch, field, reason string }{
		{`{"id":"b"}`, "id", "cannot be changed"},
		{`{"colour":"red"}`, "colour", "unknown field"},
		{`{"price":-3}`, "price", "negative"},
		{`{"price":"cheap"}`, "price", "undecodable"},
		{`{"created_at":"yesterday"}`, "created_at", "undecodable"},
		{`{"title":" "}`, "title", "empty"},
		{`[1]`, "", "JSON object"},
	} {
		_, err := Patch(base, []byte(tc.patch))
		p := problems(t, err)
		if len(p) != 1 || p[0].Field != tc.field || !strings.Contains(p[0].Reason, tc.reason) {
			t.Errorf("%s: problems %+v, want one on %q saying %q", tc.patch, p, tc.field, tc.reason)
		}
	}
}

func TestSameText(t *testing.T) {
	a := Item{ID: "a", Title: "t", Tags: []string{"x"}, Price: 1}
	b := a
	b.Price, b.Available = 2, true
	if !SameText(&a, &b) {
		t.Error("price and availability changed the text")
	}
	b.Tags = []string{"y"}
	if SameText(&a, &b) {
		t.Error("new tags kept the text")
	}
}
