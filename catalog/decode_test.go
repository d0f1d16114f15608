package catalog

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// fastMatchesStrict is decodeJSON's contract: whatever the goccy/go-json
// fast path accepts, encoding/json's strict decoder accepts too and
// decodes to the same fields (what it refuses falls back to the strict
// decoder, so only this direction matters).
func fastMatchesStrict(t *testing.T, line []byte) {
	t.Helper()
	if !utf8.Valid(line) {
		return // decodeJSON never takes the fast path for it
	}
	var fast, strict jsonItem
	if !decodeFast(line, &fast) {
		return
	}
	if err := decodeStrict(line, &strict); err != nil {
		t.Fatalf("%q: the fast path accepts what the strict decoder refuses (%v): %+v", line, err, fast)
	}
	if !reflect.DeepEqual(fast, strict) {
		t.Fatalf("%q: fast %+v, strict %+v", line, fast, strict)
	}
}

var trickyLines = []string{
	`{"id":"a","title":"A","created_at":"2025-03-01T10:00:00Z"}`,
	`{"id":"a","title":"Fern \u0026 Furrow \u00e9\u4e2d","brand":"\ud83d\ude00","category":"\ud800 lone"}`,
	`{"ID":"a","TITLE":"case","Price":1.5}`,
	`{"id":"a","id":"b","title":"duplicate key"}`,
	`{"id":"a","price":1e3,"age_rating":12,"popularity":-0.0}`,
	`{"id":"a","price":1e400}`,
	`{"id":"a","age_rating":1.5}`,
	`{"id":"a","tags":null,"price":null,"available":null,"created_at":null}`,
	`{"id":"a","tags":[],"available":false}`,
	`{"id":"a","extra":{"nested":[1,2]}}`,
	`{"id":"a"} {"id":"b"}`,
	`{"id":"a"}   `,
	`{"id":"a",}`,
	`{"id":"a" "title":"b"}`,
	`["id","a"]`,
	`null`,
	`{"id":"a","title":"tab	inside"}`,
	`{"id":"a","title":"esc \/ \b \f \n \r \t \\ \""}`,
	`{"id":"a","price":"1.5"}`,
	`{"id":"a","available":"true"}`,
	`{"id":"a","tags":["x",1]}`,
	`{"id":"a","title":"A"}` + "\n",
	`{"id":"\u0000"}`,
	`{"id":"a","age_rating":9223372036854775808}`,
	`{"id":"a","price":01}`,
	`{"id":"a","price":.5}`,
	`{"id":"a","price":+1}`,
	`{"id":"a","price":NaN}`,
	`{"id":"a","title":"\x"}`,
	`{"id":"a","title":"\u12"}`,
	`{"id":"a","title":"A"`,
}

func TestDecodeJSON_FastMatchesStrict(t *testing.T) {
	for _, line := range trickyLines {
		fastMatchesStrict(t, []byte(line))
	}
	// And the reader's verdicts and items are the strict decoder's: a
	// line it refuses still names the field the strict error names.
	if _, err := ParseItem([]byte(`{"id":"a","title":"A","colour":"red","created_at":"2025-03-01T10:00:00Z"}`)); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := ParseItem([]byte(`{"id":"a","title":"A","price":"cheap","created_at":"2025-03-01T10:00:00Z"}`)); err == nil || !strings.Contains(err.Error(), "price") {
		t.Fatalf("wrong type: %v", err)
	}
}

func FuzzDecodeJSON_FastMatchesStrict(f *testing.F) {
	for _, line := range trickyLines {
		f.Add([]byte(line))
	}
	f.Fuzz(fastMatchesStrict)
}
