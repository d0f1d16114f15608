package api

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/recsys-dev/recsys/engine"
)

var testLimits = kLimits{max: 1000, def: 10}

func TestDecodeSearch(t *testing.T) {
	p := func(f float64) *float64 { return &f }
	cases := []struct {
		name string
		body string
		want engine.SearchRequest
	}{
		{"minimal", `{"query":"shoes"}`, engine.SearchRequest{Query: "shoes", K: 10}},
		{"trimmed unicode", "\n {\"query\":\"\\t Äpfel und Birnen \\n\"} \n", engine.SearchRequest{Query: "Äpfel und Birnen", K: 10}},
		{"nulls are absent", `{"query":"a","k":null,"user":null,"filters":null}`, engine.SearchRequest{Query: "a", K: 10}},
		{"k at bounds", `{"query":"a","k":1000}`, engine.SearchRequest{Query: "a", K: 1000}},
		{"query at limit", `{"query":"` + strings.Repeat("é", 512) + `"}`, engine.SearchRequest{Query: strings.Repeat("é", 512), K: 10}},
		{"age zero is unknown", `{"query":"a","user":{"id":"u","age":0}}`, engine.SearchRequest{Query: "a", K: 10, User: engine.User{ID: "u"}}},
		{"equal prices", `{"query":"a","filters":{"price_min":5,"price_max":5}}`,
			engine.SearchRequest{Query: "a", K: 10, Filters: engine.Filters{PriceMin: p(5), PriceMax: p(5)}}},
		{"empty filter lists", `{"query":"a","filters":{"categories":[],"brands":[]}}`, engine.SearchRequest{Query: "a", K: 10}},
		{"retrieval mode", `{"query":"a","retrieval":"lexical"}`, engine.SearchRequest{Query: "a", K: 10, Retrieval: "lexical"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeSearch([]byte(tc.body), testLimits)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeSearch_Retrieval(t *testing.T) {
	for _, body := range []string{`{"query":"a","retrieval":"bm25"}`, `{"query":"a","retrieval":""}`, `{"query":"a","retrieval":1}`} {
		_, err := decodeSearch([]byte(body), testLimits)
		checkDecodeError(t, err)
		var re *requestError
		if errors.As(err, &re) && re.field != "retrieval" {
			t.Errorf("%s: error names %q, want retrieval", body, re.field)
		}
	}
}

func TestDecodeRecommend(t *testing.T) {
	cases := []struct {
		name string
		body string
		want engine.RecommendRequest
	}{
		{"recent", `{"recent_items":["b","a"]}`, engine.RecommendRequest{RecentItems: []string{"b", "a"}, K: 10}},
		{"seed and recent", `{"seed_item":"s","recent_items":["a"],"k":2}`,
			engine.RecommendRequest{SeedItem: "s", RecentItems: []string{"a"}, K: 2}},
		{"user with age", `{"user":{"id":"u","age":150},"seed_item":"s"}`,
			engine.RecommendRequest{User: engine.User{ID: "u", Age: 150}, SeedItem: "s", K: 10}},
		{"hundred items", `{"recent_items":["` + strings.Repeat(`a","`, 99) + `a"]}`,
			engine.RecommendRequest{RecentItems: slicesRepeat("a", 100), K: 10}},
		{"sources, exclusions and order", `{"user":{"id":"u"},"sources":["cooc","als"],"exclude_items":["x"],"order":"retrieval"}`,
			engine.RecommendRequest{User: engine.User{ID: "u"}, K: 10, Sources: []string{"cooc", "als"}, ExcludeItems: []string{"x"}, Order: "retrieval"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeRecommend([]byte(tc.body), testLimits)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeRecommend_BadSources(t *testing.T) {
	for body, field := range map[string]string{
		`{"seed_item":"s","sources":["cooc","magic"]}`: "sources[1]",
		`{"seed_item":"s","order":"random"}`:           "order",
		`{"seed_item":"s","exclude_items":["ok",""]}`:  "exclude_items[1]",
	} {
		_, err := decodeRecommend([]byte(body), testLimits)
		var re *requestError
		if !errors.As(err, &re) || re.field != field || re.status != http.StatusBadRequest {
			t.Errorf("%s: error %v, want a 400 naming %s", body, err, field)
		}
	}
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// checkDecodeError asserts the contract every decoder error keeps: a 400
// invalid_argument naming a field, with a message.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var re *requestError
	if !errors.As(err, &re) {
		t.Fatalf("error %T %v is not a request error", err, err)
	}
	if re.status != http.StatusBadRequest || re.code != CodeInvalidArgument || re.field == "" || re.msg == "" {
		t.Fatalf("error %+v breaks the contract", re)
	}
}

func checkUserFilters(t *testing.T, u engine.User, f engine.Filters) {
	t.Helper()
	if u.Age < 0 || u.Age > maxAge {
		t.Fatalf("age %d accepted", u.Age)
	}
	for _, id := range append(append([]string{}, f.Categories...), f.Brands...) {
		checkAcceptedID(t, id)
	}
	if u.ID != "" {
		checkAcceptedID(t, u.ID)
	}
	for _, p := range []*float64{f.PriceMin, f.PriceMax} {
		if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0) || *p < 0) {
			t.Fatalf("price %v accepted", *p)
		}
	}
	if f.PriceMin != nil && f.PriceMax != nil && *f.PriceMin > *f.PriceMax {
		t.Fatalf("price range %v > %v accepted", *f.PriceMin, *f.PriceMax)
	}
}

func checkAcceptedID(t *testing.T, id string) {
	t.Helper()
	if strings.TrimSpace(id) == "" || len(id) > maxIDBytes || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		t.Fatalf("id %q accepted", id)
	}
}

func FuzzDecodeSearch(f *testing.F) {
	for _, s := range []string{
		`{"query":"red shoes","k":5,"user":{"id":"u","age":30},"filters":{"categories":["c"],"brands":["b"],"price_min":1,"price_max":2},"explain":true}`,
		`{"query":"a","retrieval":"dense"}`, `{"query":"a","retrieval":"x"}`,
		`{"query":" "}`, `{"query":"a","k":0}`, `{"query":"a","filters":{"x":1}}`, `{"query":"a"}{}`,
		`[]`, `null`, `{"query":"a","user":{"age":"1"}}`, `{"query":"\u0000"}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeSearch(body, testLimits)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if req.Query == "" || req.Query != strings.TrimSpace(req.Query) || len(req.Query) > maxQueryBytes {
			t.Fatalf("query %q accepted", req.Query)
		}
		if req.K < 1 || req.K > testLimits.max {
			t.Fatalf("k %d accepted", req.K)
		}
		checkUserFilters(t, req.User, req.Filters)
		// What was accepted must survive a round trip through the wire
		// format unchanged: the decoder neither invents nor drops data.
		again, err := decodeSearch(encodeSearch(t, req), testLimits)
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip of %+v: %+v, %v", req, again, err)
		}
	})
}

func FuzzDecodeRecommend(f *testing.F) {
	for _, s := range []string{
		`{"user":{"id":"u","age":3},"recent_items":["a","b"],"seed_item":"s","k":3,"filters":{"brands":["x"]},"explain":true}`,
		`{}`, `{"user":{"id":"u"}}`, `{"recent_items":[""]}`, `{"recent_items":"a"}`, `{"seed_item":null}`,
		`{"seed_item":"s","k":1001}`, `{"seed_item":"s"} x`, `"s"`,
		`{"seed_item":"s","sources":["cooc","als"],"exclude_items":["a"],"order":"retrieval"}`, `{"seed_item":"s","sources":["x"]}`,
		`{"seed_item":"s","order":"random"}`, `{"seed_item":"s","exclude_items":[""]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRecommend(body, testLimits)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if len(req.RecentItems) == 0 && req.SeedItem == "" && req.User.ID == "" {
			t.Fatalf("request without user, items or seed accepted")
		}
		if len(req.RecentItems) > maxRecentItems {
			t.Fatalf("%d recent items accepted", len(req.RecentItems))
		}
		for _, id := range req.RecentItems {
			checkAcceptedID(t, id)
		}
		if req.SeedItem != "" {
			checkAcceptedID(t, req.SeedItem)
		}
		if req.K < 1 || req.K > testLimits.max {
			t.Fatalf("k %d accepted", req.K)
		}
		checkUserFilters(t, req.User, req.Filters)
		again, err := decodeRecommend(encodeRecommend(t, req), testLimits)
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip of %+v: %+v, %v", req, again, err)
		}
	})
}

func wireUser(u engine.User) *userBody {
	out := &userBody{Age: &u.Age}
	if u.ID != "" {
		out.ID = &u.ID
	}
	return out
}

func wireFilters(f engine.Filters) *filtersBody {
	return &filtersBody{Categories: f.Categories, Brands: f.Brands, PriceMin: f.PriceMin,
		PriceMax: f.PriceMax}
}

func encodeSearch(t *testing.T, r engine.SearchRequest) []byte {
	sb := searchBody{Query: &r.Query, K: &r.K, User: wireUser(r.User), Filters: wireFilters(r.Filters), Explain: r.Explain}
	if r.Retrieval != "" {
		sb.Retrieval = &r.Retrieval
	}
	b, err := json.Marshal(sb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeRecommend(t *testing.T, r engine.RecommendRequest) []byte {
	w := recommendBody{RecentItems: r.RecentItems, K: &r.K, User: wireUser(r.User), Filters: wireFilters(r.Filters), Explain: r.Explain,
		Sources: r.Sources, ExcludeItems: r.ExcludeItems}
	if r.SeedItem != "" {
		w.SeedItem = &r.SeedItem
	}
	if r.Order != "" {
		w.Order = &r.Order
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeSearch_Context(t *testing.T) {
	lim := kLimits{max: 100, def: 10}
	req, err := decodeSearch([]byte(`{"query":"q","context":{"page":"home","device":"ios"}}`), lim)
	if err != nil || req.Context["page"] != "home" || req.Context["device"] != "ios" {
		t.Fatalf("decodeSearch = %+v, %v", req.Context, err)
	}
	long := strings.Repeat("x", maxContextValueBytes+1)
	for body, field := range map[string]string{
		`{"query":"q","context":{"page":"` + long + `"}}`: "context.page",
		`{"query":"q","context":{"":"x"}}`:                "context",
		`{"query":"q","context":{"page":"a\u0001"}}`:      "context.page",
		`{"query":"q","context":{"page":3}}`:              "context",
	} {
		_, err := decodeSearch([]byte(body), lim)
		var re *requestError
		if !errors.As(err, &re) || re.field != field {
			t.Errorf("%s: error %v, want one naming %s", body, err, field)
		}
	}
	if _, err := decodeRecommend([]byte(`{"user":{"id":"u"},"context":{"page":"`+long+`"}}`), lim); err == nil {
		t.Error("recommend accepted an oversized context value")
	}
}
