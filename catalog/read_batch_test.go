package catalog

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// manyItems returns n valid items with distinct ids and varied fields.
func manyItems(n int) []Item {
	created := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{ID: fmt.Sprintf("sku-%06d", i), Title: fmt.Sprintf("Item %d", i),
			Description: strings.Repeat("word ", i%40), Brand: fmt.Sprintf("brand%d", i%17),
			Category: fmt.Sprintf("cat%d", i%9), Tags: []string{"t" + fmt.Sprint(i%5)}, Price: float64(i%300) + 0.5,
			AgeRating: i % 3 * 6, Available: i%7 != 0, CreatedAt: created.Add(time.Duration(i) * time.Minute), Popularity: float64(i % 50)}
	}
	return items
}

// Lines are decoded in parallel batches and checked in order: a catalog of
// several batches reads back exactly as written, and problems in different
// batches (an undecodable line, a duplicate of an id from an earlier
// batch, a line over the size bound) keep their line numbers and order.
func TestRead_JSONLAcrossBatches(t *testing.T) {
	n := 3*jsonBatch + 17
	want := manyItems(n)
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(buf.Bytes()), JSONL)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("item %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
		t.Fatalf("got %d items, want %d", len(got), len(want))
	}

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	lines[jsonBatch+5] = `{"id":"bad","title":"x","colour":"red",` + ts + `}` // line jsonBatch+6
	lines[2*jsonBatch+9] = strings.Replace(lines[2*jsonBatch+9], fmt.Sprintf("sku-%06d", 2*jsonBatch+9), "sku-000003", 1)
	lines[3*jsonBatch+1] = `{"id":"big","title":"` + strings.Repeat("a", MaxLineBytes) + `"}`
	_, err = Read(strings.NewReader(strings.Join(lines, "\n")), JSONL)
	checkProblems(t, err, []problemKey{
		{jsonBatch + 6, "colour", "unknown field"},
		{2*jsonBatch + 10, "id", "duplicate of line 4"},
		{3*jsonBatch + 2, "", "longer than"},
	})
}

func BenchmarkReadJSONL(b *testing.B) {
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, manyItems(100_000)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(bytes.NewReader(buf.Bytes()), JSONL); err != nil {
			b.Fatal(err)
		}
	}
}
