package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const ts = `"created_at":"2025-03-01T10:00:00Z"`

// problemKey is what the tables compare: line, field and a fragment of the
// reason, so a test fails when a problem moves line or changes meaning.
type problemKey struct {
	Line  int
	Field string
	Has   string
}

func checkProblems(t *testing.T, err error, want []problemKey) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v, want *ValidationError", err)
	}
	if len(ve.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ve.Problems), len(want), err)
	}
	for i, w := range want {
		p := ve.Problems[i]
		if p.Line != w.Line || p.Field != w.Field || !strings.Contains(p.Reason, w.Has) {
			t.Errorf("problem %d = %+v, want line %d field %q reason containing %q", i, p, w.Line, w.Field, w.Has)
		}
	}
}

func TestRead_JSONLProblems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []problemKey
	}{
		{
			name: "undecodable line",
			in:   `{"id":"a","title":"A",` + ts + "}\n{not json\n",
			want: []problemKey{{2, "", "undecodable"}},
		},
		{
			name: "unknown field",
			in:   `{"id":"a","title":"A","colour":"red",` + ts + "}\n",
			want: []problemKey{{1, "colour", `unknown field "colour"`}},
		},
		{
			name: "wrong type names the field",
			in:   `{"id":"a","title":"A","price":"cheap",` + ts + "}\n",
			want: []problemKey{{1, "price", "undecodable"}},
		},
		{
			name: "two objects on one line",
			in:   `{"id":"a","title":"A",` + ts + `} {"id":"b"}` + "\n",
			want: []problemKey{{1, "", "data after the object"}},
		},
		{
			name: "missing id after blank lines",
			in:   "\n\n" + `{"title":"A",` + ts + "}\n",
			want: []problemKey{{3, "id", "missing"}},
		},
		{
			name: "duplicate id names the first line",
			in: `{"id":"a","title":"A",` + ts + "}\n" +
				`{"id":"b","title":"B",` + ts + "}\n" +
				`{"id":"a","title":"A again",` + ts + "}\n",
			want: []problemKey{{3, "id", "duplicate of line 1"}},
		},
		{
			name: "empty title",
			in:   `{"id":"a","title":"  ",` + ts + "}\n",
			want: []problemKey{{1, "title", "empty"}},
		},
		{
			name: "negative price and popularity",
			in:   `{"id":"a","title":"A","price":-1,"popularity":-0.5,` + ts + "}\n",
			want: []problemKey{{1, "price", "negative"}, {1, "popularity", "negative"}},
		},
		{
			name: "age rating out of range",
			in: `{"id":"a","title":"A","age_rating":22,` + ts + "}\n" +
				`{"id":"b","title":"B","age_rating":-1,` + ts + "}\n",
			want: []problemKey{{1, "age_rating", "outside 0..21"}, {2, "age_rating", "outside 0..21"}},
		},
		{
			name: "created_at missing and unparseable",
			in: `{"id":"a","title":"A"}` + "\n" +
				`{"id":"b","title":"B","created_at":"yesterday"}` + "\n" +
				`{"id":"c","title":"C","created_at":""}` + "\n",
			want: []problemKey{{1, "created_at", "missing"}, {2, "created_at", "RFC 3339"}, {3, "created_at", "missing"}},
		},
		{
			name: "id too long",
			in:   `{"id":"` + strings.Repeat("x", 257) + `","title":"A",` + ts + "}\n",
			want: []problemKey{{1, "id", "longer than 256"}},
		},
		{
			name: "id with control characters",
			in:   `{"id":"a\u0007b","title":"A",` + ts + "}\n",
			want: []problemKey{{1, "id", "control characters"}},
		},
		{
			name: "overlong line is skipped and reported",
			in: `{"id":"a","title":"A",` + ts + "}\n" +
				`{"id":"b","title":"` + strings.Repeat("x", MaxLineBytes) + `",` + ts + "}\n" +
				`{"id":"c","title":"",` + ts + "}\n",
			want: []problemKey{{2, "", "longer than"}, {3, "title", "empty"}},
		},
		{
			name: "every bad line is reported",
			in: `{"id":"a","title":"A",` + ts + "}\n" +
				"garbage\n" +
				`{"id":"c","title":"",` + ts + "}\n" +
				"\n" +
				`{"id":"a","title":"A",` + ts + "}\n",
			want: []problemKey{{2, "", "undecodable"}, {3, "title", "empty"}, {5, "id", "duplicate of line 1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := Read(strings.NewReader(tt.in), JSONL)
			if items != nil {
				t.Errorf("got %d items alongside problems, want none", len(items))
			}
			checkProblems(t, err, tt.want)
		})
	}
}

const csvHeaderRow = "id,title,description,brand,category,tags,price,age_rating,available,created_at,popularity\n"

func TestRead_CSVProblems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []problemKey
	}{
		{
			name: "missing required columns are named",
			in:   "title,price\nA,1\n",
			want: []problemKey{{1, "", "missing required columns: id, created_at"}},
		},
		{
			name: "unknown column",
			in:   "id,title,created_at,colour\na,A,2025-01-01T00:00:00Z,red\n",
			want: []problemKey{{1, "", `unknown columns: "colour"`}},
		},
		{
			name: "no header",
			in:   "",
			want: []problemKey{{1, "", "missing header row"}},
		},
		{
			name: "wrong field count",
			in:   csvHeaderRow + "a,A,,,,,1,0,true,2025-01-01T00:00:00Z,1\nb,B,1\n",
			want: []problemKey{{3, "", "has 3 fields, header has 11"}},
		},
		{
			name: "bare quote is reported and reading continues",
			in: csvHeaderRow +
				"a,A,,,,,1,0,true,2025-01-01T00:00:00Z,1\n" +
				"b,B\"x,,,,,1,0,true,2025-01-01T00:00:00Z,1\n" +
				"c,,,,,,1,0,true,2025-01-01T00:00:00Z,1\n",
			want: []problemKey{{3, "", "undecodable"}, {4, "title", "empty"}},
		},
		{
			name: "field values",
			in: csvHeaderRow +
				"a,A,,,,,NaN,0,true,2025-01-01T00:00:00Z,1\n" +
				"b,B,,,,,cheap,x,maybe,2025-01-01,Inf\n",
			want: []problemKey{
				{2, "price", "not finite"},
				{3, "price", "not a number"},
				{3, "age_rating", "not an integer"},
				{3, "available", "not a boolean"},
				{3, "created_at", "RFC 3339"},
				{3, "popularity", "not finite"},
			},
		},
		{
			name: "line numbers count quoted newlines",
			in: csvHeaderRow +
				"a,A,\"two\nlines\",,,,1,0,true,2025-01-01T00:00:00Z,1\n" +
				"a,A,,,,,1,0,true,2025-01-01T00:00:00Z,1\n",
			want: []problemKey{{4, "id", "duplicate of line 2"}},
		},
		{
			name: "age rating and missing created_at",
			in:   "id,title,age_rating,created_at\na,A,30,\n",
			want: []problemKey{{2, "created_at", "missing"}, {2, "age_rating", "outside"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := Read(strings.NewReader(tt.in), CSV)
			if items != nil {
				t.Errorf("got %d items alongside problems, want none", len(items))
			}
			checkProblems(t, err, tt.want)
		})
	}
}

// The brief's own example: a duplicate id and an empty title in one file
// must both be reported, each with its line.
func TestRead_DuplicateAndEmptyTitle(t *testing.T) {
	jsonl := `{"id":"x1","title":"First",` + ts + "}\n" +
		`{"id":"x2","title":"",` + ts + "}\n" +
		`{"id":"x1","title":"Again",` + ts + "}\n"
	csvIn := "id,title,created_at\n" +
		"x1,First,2025-03-01T10:00:00Z\n" +
		"x2,,2025-03-01T10:00:00Z\n" +
		"x1,Again,2025-03-01T10:00:00Z\n"
	for _, tc := range []struct {
		name string
		in   string
		f    Format
	}{{"jsonl", jsonl, JSONL}, {"csv", csvIn, CSV}} {
		t.Run(tc.name, func(t *testing.T) {
			off := 0
			if tc.f == CSV {
				off = 1 // the header is line 1
			}
			_, err := Read(strings.NewReader(tc.in), tc.f)
			checkProblems(t, err, []problemKey{{2 + off, "title", "empty"}, {3 + off, "id", fmt.Sprintf("duplicate of line %d", 1+off)}})
			if !strings.Contains(err.Error(), fmt.Sprintf("line %d (id \"x1\"): id: duplicate", 3+off)) {
				t.Errorf("error text does not name the duplicate line:\n%v", err)
			}
		})
	}
}

func TestRead_Good(t *testing.T) {
	created := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	want := []Item{
		{ID: "a", Title: "Trail shoe", Description: "Grips, \"really\" well", Brand: "Acme", Category: "running",
			Tags: []string{"trail", "waterproof"}, Price: 89.5, AgeRating: 0, Available: true, CreatedAt: created, Popularity: 12},
		{ID: "b", Title: "Riff album", Category: "heavy-metal", Price: 0, AgeRating: 12, Available: false, CreatedAt: created},
	}
	tests := []struct {
		name string
		in   string
		f    Format
	}{
		{
			name: "jsonl with BOM, CRLF and blank lines",
			in: "\uFEFF" + `{"id":"a","title":"Trail shoe","description":"Grips, \"really\" well","brand":"Acme","category":"running","tags":["trail","waterproof"],"price":89.5,` + ts + `,"popularity":12}` + "\r\n\r\n" +
				`{"id":"b","title":"Riff album","category":"heavy-metal","age_rating":12,"available":false,` + ts + "}",
			f: JSONL,
		},
		{
			name: "csv with reordered and omitted columns",
			in: "\uFEFFtitle,id,created_at,description,brand,category,tags,price,age_rating,available,popularity\n" +
				"Trail shoe,a,2025-03-01T10:00:00Z,\"Grips, \"\"really\"\" well\",Acme,running,trail| waterproof |,89.5,,,12\n" +
				"Riff album,b,2025-03-01T10:00:00Z,,,heavy-metal,,,12,false,\n",
			f: CSV,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(strings.NewReader(tt.in), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestRead_Empty(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		f    Format
	}{{"jsonl", "\n\n", JSONL}, {"csv header only", "id,title,created_at\n", CSV}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Read(strings.NewReader(tc.in), tc.f); !errors.Is(err, ErrEmpty) {
				t.Errorf("error = %v, want ErrEmpty", err)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	items := []Item{{ID: "a", Title: "A", Available: true, CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}}
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, items); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		data    string
		wantErr string
	}{
		{name: "jsonl", file: "c.jsonl", data: buf.String()},
		{name: "ndjson upper case", file: "c.NDJSON", data: buf.String()},
		{name: "csv", file: "c.csv", data: "id,title,created_at\na,A,2025-01-02T03:04:05Z\n"},
		{name: "unknown extension", file: "c.txt", data: buf.String(), wantErr: `unknown extension ".txt"`},
		{name: "missing file", file: "absent.jsonl", wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			if tt.data != "" {
				if err := os.WriteFile(path, []byte(tt.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadFile(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, items) {
				t.Errorf("got %+v, want %+v", got, items)
			}
		})
	}
}
