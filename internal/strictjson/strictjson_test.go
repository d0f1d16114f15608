package strictjson

import (
	"encoding/json"
	"testing"
)

type inner struct {
	N int `json:"n"`
}

type outer struct {
	K     int      `json:"k"`
	S     string   `json:"s"`
	In    inner    `json:"in"`
	Items []string `json:"items"`
	Sub   *sub     `json:"sub"`
}

// sub decodes itself with Decode, as nested strict objects do.
type sub struct {
	V bool `json:"v"`
}

func (s *sub) UnmarshalJSON(b []byte) error {
	type plain sub
	if err := Decode(b, (*plain)(s), "sub"); err != nil {
		return err
	}
	return nil
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, body    string
		field, reason string // empty field: success
	}{
		{"ok", `{"k":1,"s":"x","in":{"n":2},"items":["a"],"sub":{"v":true}}`, "", ""},
		{"empty", "  ", "body", "must not be empty"},
		{"not an object", `[1]`, "body", "must be a JSON object"},
		{"two values", `{"k":1} {"k":2}`, "body", "trailing data after the JSON object"},
		{"trailing garbage", `{"k":1} x`, "body", "trailing data after the JSON object"},
		{"syntax", `{"k":1,}`, "body", "invalid JSON at offset 8"},
		{"truncated", `{"k":`, "body", "truncated JSON"},
		{"wrong type", `{"k":"ten"}`, "k", "must be an integer, got string"},
		{"float for int", `{"k":1.5}`, "k", "must be an integer, got number"},
		{"nested type", `{"in":{"n":true}}`, "in.n", "must be an integer, got bool"},
		{"array type", `{"items":"a"}`, "items", "must be an array, got string"},
		{"unknown", `{"kk":1}`, "kk", "unknown field"},
		{"unknown empty name", `{"":1}`, "body", `unknown field ""`},
		{"nested decoder unknown", `{"sub":{"w":1}}`, "sub.w", "unknown field"},
		{"nested decoder type", `{"sub":{"v":1}}`, "sub.v", "must be a boolean, got number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v outer
			err := Decode([]byte(tc.body), &v, "")
			if tc.field == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || err.Field != tc.field || err.Reason != tc.reason {
				t.Fatalf("err = %#v, want %s: %s", err, tc.field, tc.reason)
			}
		})
	}
}

func TestDecode_Prefix(t *testing.T) {
	var v inner
	err := Decode([]byte(`{"x":1}`), &v, "items[3]")
	if err == nil || err.Field != "items[3].x" {
		t.Fatalf("err = %#v", err)
	}
	if err := Decode([]byte(`7`), &v, "items[3]"); err == nil || err.Field != "items[3]" {
		t.Fatalf("err = %#v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"k":1}`, `{"in":{"n":"x"}}`, `{"sub":{"v":true}}`, `{`, `[]`, `{"\u00ff":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v outer
		err := Decode(b, &v, "")
		if err == nil {
			// Accepted input must be valid JSON that round-trips.
			out, merr := json.Marshal(v)
			if merr != nil || Decode(out, new(outer), "") != nil {
				t.Fatalf("accepted %q but its re-encoding %q fails", b, out)
			}
			return
		}
		if err.Field == "" || err.Reason == "" {
			t.Fatalf("error without field or reason: %#v", err)
		}
	})
}
