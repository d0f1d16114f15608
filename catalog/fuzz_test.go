package catalog

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fuzzRead checks the reader contract on arbitrary input: no panic; either
// items or an error, never both; every problem has a line; and whatever is
// accepted passes Validate and survives a JSONL round trip unchanged.
func fuzzRead(t *testing.T, data []byte, f Format) {
	items, err := Read(bytes.NewReader(data), f)
	if err != nil {
		if items != nil {
			t.Fatalf("items returned with error %v", err)
		}
		var ve *ValidationError
		if errors.As(err, &ve) {
			if len(ve.Problems) == 0 {
				t.Fatal("ValidationError without problems")
			}
			for _, p := range ve.Problems {
				if p.Line < 1 || p.Reason == "" {
					t.Fatalf("bad problem %+v", p)
				}
			}
			_ = ve.Error()
		} else if !errors.Is(err, ErrEmpty) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		return
	}
	if err := Validate(items); err != nil {
		t.Fatalf("accepted items fail Validate: %v", err)
	}
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, items); err != nil {
		t.Fatalf("write accepted items: %v", err)
	}
	again, err := Read(&buf, JSONL)
	if err != nil {
		t.Fatalf("reread: %v\n%s", err, buf.String())
	}
	assertSameItems(t, again, items)
}

func FuzzRead_JSONL(f *testing.F) {
	f.Add([]byte(`{"id":"a","title":"A","created_at":"2025-03-01T10:00:00Z"}`))
	f.Add([]byte(`{"id":"a","title":"A","tags":["x","y"],"price":1.5,"age_rating":12,"available":false,"created_at":"2025-03-01T10:00:00+02:00","popularity":3}` + "\n\n" + `{"id":"a"}`))
	f.Add([]byte("{not json\n{}\n"))
	f.Add([]byte(`{"id":"a\u0000","title":"A","created_at":"2025-03-01T10:00:00.123456789Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, data, JSONL) })
}

func FuzzRead_CSV(f *testing.F) {
	f.Add([]byte(csvHeaderRow + "a,A,d,b,c,x|y,1.5,12,false,2025-03-01T10:00:00Z,3\n"))
	f.Add([]byte("id,title,created_at\na,\"multi\nline\",2025-03-01T10:00:00Z\nb,B\"x,\n"))
	f.Add([]byte("title,price\nA,1\n"))
	f.Add([]byte("id,title,created_at,price\na,A,2025-03-01T10:00:00Z,NaN\n" + strings.Repeat("a,A,x,1\n", 3)))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, data, CSV) })
}
