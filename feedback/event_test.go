package feedback

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

const (
	validAddToCart  = `{"type":"add_to_cart","schema_version":1,"timestamp":"2026-11-01T11:59:00Z","user_id":"u1","item_id":"i9","quantity":2}`
	validDwell      = `{"type":"dwell","schema_version":1,"timestamp":"2026-11-01T11:59:00Z","user_id":"u1","item_id":"i9","dwell_ms":5400}`
	validClick      = `{"event_id":"e-1","type":"click","schema_version":1,"timestamp":"2026-11-01T11:59:00Z","user_id":"u1","item_id":"i9","request_id":"r1","position":2,"surface":"search","query":"red shoes"}`
	validPurchase   = `{"type":"purchase","schema_version":1,"timestamp":"2026-11-01T11:59:00.123456789+01:00","user_id":"u1","item_id":"i9","value":19.5}`
	validImpression = `{"type":"impression","schema_version":1,"timestamp":"2026-11-01T11:59:00Z","user_id":"u1","request_id":"r1","surface":"recommend","bundle":"v7","feature_names":["ann_score","ctr"],"items":[{"item_id":"a","position":0,"score":0.9,"features":[0.5,0.1]},{"item_id":"b","position":1,"score":0.4,"features":[0.3,0]}]}`
)

// withField returns the valid JSON object doc with key set to raw JSON
// value, or removed when raw is empty.
func withField(t *testing.T, doc, key, raw string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	if raw == "" {
		delete(m, key)
	} else {
		m[key] = json.RawMessage(raw)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestDecode_Valid(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, ev Event)
	}{
		{"click", validClick, func(t *testing.T, ev Event) {
			if ev.Type != TypeClick || ev.ItemID != "i9" || ev.EventID != "e-1" || ev.Position == nil || *ev.Position != 2 {
				t.Errorf("decoded %+v", ev)
			}
			if !ev.Timestamp.Equal(time.Date(2026, 11, 1, 11, 59, 0, 0, time.UTC)) {
				t.Errorf("timestamp = %v", ev.Timestamp)
			}
		}},
		{"purchase with offset timestamp and nanoseconds", validPurchase, func(t *testing.T, ev Event) {
			if ev.Value == nil || *ev.Value != 19.5 {
				t.Errorf("value = %v", ev.Value)
			}
			if ev.Timestamp.Nanosecond() != 123456789 || !ev.Timestamp.Equal(time.Date(2026, 11, 1, 10, 59, 0, 123456789, time.UTC)) {
				t.Errorf("timestamp = %v", ev.Timestamp)
			}
		}},
		{"impression", validImpression, func(t *testing.T, ev Event) {
			if len(ev.Items) != 2 || ev.Items[1].ItemID != "b" || ev.Items[1].Position != 1 || ev.Items[0].Features[1] != 0.1 {
				t.Errorf("items = %+v", ev.Items)
			}
			if !reflect.DeepEqual(ev.FeatureNames, []string{"ann_score", "ctr"}) {
				t.Errorf("feature_names = %v", ev.FeatureNames)
			}
		}},
		{"impression without features", `{"type":"impression","schema_version":1,"timestamp":"2026-11-01T11:59:00Z","user_id":"u1","surface":"search","items":[{"item_id":"a","position":3,"score":1}]}`, func(t *testing.T, ev Event) {
			if len(ev.Items) != 1 || ev.Items[0].Position != 3 {
				t.Errorf("items = %+v", ev.Items)
			}
		}},
		{"surrounding whitespace", "\n  " + validClick + " \n", func(t *testing.T, ev Event) {
			if ev.UserID != "u1" {
				t.Errorf("user_id = %q", ev.UserID)
			}
		}},
		{"timestamp exactly 5 minutes ahead", withField(t, validClick, "timestamp", `"2026-11-01T12:05:00Z"`), func(t *testing.T, ev Event) {}},
		{"add to cart with quantity", validAddToCart, func(t *testing.T, ev Event) {
			if ev.Type != TypeAddToCart || ev.Quantity == nil || *ev.Quantity != 2 {
				t.Errorf("decoded %+v", ev)
			}
		}},
		{"dwell", validDwell, func(t *testing.T, ev Event) {
			if ev.Type != TypeDwell || ev.DwellMS == nil || *ev.DwellMS != 5400 {
				t.Errorf("decoded %+v", ev)
			}
		}},
		{"unicode ids", withField(t, validClick, "user_id", `"usér-ß-日本"`), func(t *testing.T, ev Event) {
			if ev.UserID != "usér-ß-日本" {
				t.Errorf("user_id = %q", ev.UserID)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode([]byte(tt.body), testNow)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tt.check(t, ev)
			// What the producer writes must decode to the same event.
			out, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Decode(out, testNow)
			if err != nil {
				t.Fatalf("Decode(re-encoded): %v\n%s", err, out)
			}
			if !eventsEqual(ev, again) {
				t.Errorf("round trip changed the event:\n%+v\n%+v", ev, again)
			}
		})
	}
}

// eventsEqual compares events with time.Time compared by instant.
func eventsEqual(a, b Event) bool {
	if !a.Timestamp.Equal(b.Timestamp) {
		return false
	}
	a.Timestamp, b.Timestamp = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func TestDecode_Malformed(t *testing.T) {
	long := `"` + strings.Repeat("x", MaxIDBytes+1) + `"`
	tests := []struct {
		name       string
		body       string
		wantField  string
		wantReason string
	}{
		{"empty body", ``, "body", "empty"},
		{"not an object", `[1,2]`, "body", "must be a JSON object"},
		{"null", `null`, "body", "must be a JSON object"},
		{"syntax error", `{"type":"click",}`, "body", "invalid JSON"},
		{"truncated", `{"type":"click"`, "body", "truncated"},
		{"trailing data", validClick + ` {}`, "body", "trailing data"},
		{"trailing garbage", validClick + `x`, "body", "trailing data"},
		{"unknown field", withField(t, validClick, "color", `"red"`), "color", "unknown field"},
		{"unknown field in item", strings.Replace(validImpression, `"item_id":"b"`, `"item_id":"b","extra":1`, 1), "items[1].extra", "unknown field"},
		{"missing type", withField(t, validClick, "type", ""), "type", "required"},
		{"unknown type", withField(t, validClick, "type", `"view"`), "type", "must be one of"},
		{"type as number", withField(t, validClick, "type", `3`), "type", "must be a string"},
		{"schema version 2", withField(t, validClick, "schema_version", `2`), "schema_version", "must be 1"},
		{"schema version missing", withField(t, validClick, "schema_version", ""), "schema_version", "must be 1"},
		{"schema version as string", withField(t, validClick, "schema_version", `"1"`), "schema_version", "must be an integer"},
		{"missing user", withField(t, validClick, "user_id", ""), "user_id", "required"},
		{"user id too long", withField(t, validClick, "user_id", long), "user_id", "longer than 256 bytes"},
		{"control char in user id", withField(t, validClick, "user_id", `"u\u0000x"`), "user_id", "control characters"},
		{"newline in event id", withField(t, validClick, "event_id", `"a\nb"`), "event_id", "control characters"},
		{"control char in request id", withField(t, validClick, "request_id", `"r\u007f"`), "request_id", "control characters"},
		{"missing timestamp", withField(t, validClick, "timestamp", ""), "timestamp", "required"},
		{"timestamp not RFC 3339", withField(t, validClick, "timestamp", `"01/11/2026 11:00"`), "timestamp", "RFC 3339"},
		{"timestamp as number", withField(t, validClick, "timestamp", `1700000000`), "timestamp", "RFC 3339"},
		{"timestamp in the future", withField(t, validClick, "timestamp", `"2026-11-01T12:05:01Z"`), "timestamp", "future"},
		{"timestamp too old", withField(t, validClick, "timestamp", `"2026-10-01T11:59:59Z"`), "timestamp", "older than 30 days"},
		{"click without item", withField(t, validClick, "item_id", ""), "item_id", "required for click"},
		{"purchase without item", withField(t, validPurchase, "item_id", ""), "item_id", "required for purchase"},
		{"negative position", withField(t, validClick, "position", `-1`), "position", ">= 0"},
		{"fractional position", withField(t, validClick, "position", `1.5`), "position", "must be an integer"},
		{"negative purchase value", withField(t, validPurchase, "value", `-0.01`), "value", ">= 0"},
		{"value on click", withField(t, validClick, "value", `3`), "value", "only allowed for purchase"},
		{"value as string", withField(t, validPurchase, "value", `"3"`), "value", "must be a number"},
		{"unknown surface", withField(t, validClick, "surface", `"email"`), "surface", "must be one of"},
		{"items on click", withField(t, validClick, "items", `[{"item_id":"a","position":0,"score":1}]`), "items", "only allowed for impression"},
		{"impression without items", withField(t, validImpression, "items", ""), "items", "required for impression"},
		{"impression with empty items", withField(t, validImpression, "items", `[]`), "items", "required for impression"},
		{"impression without surface", withField(t, validImpression, "surface", ""), "surface", "required for impression"},
		{"impression with item_id", withField(t, validImpression, "item_id", `"a"`), "item_id", "not allowed for impression"},
		{"items not an array", withField(t, validImpression, "items", `{}`), "items", "must be an array"},
		{"item not an object", withField(t, validImpression, "items", `[3]`), "items[0]", "must be a JSON object"},
		{"item without id", withField(t, validImpression, "items", `[{"item_id":"a","position":0,"score":1,"features":[1,2]},{"position":1,"score":1,"features":[1,2]}]`), "items[1].item_id", "required"},
		{"item position wrong type", withField(t, validImpression, "items", `[{"item_id":"a","position":"0","score":1,"features":[1,2]}]`), "items[0].position", "must be an integer"},
		{"item negative position", withField(t, validImpression, "items", `[{"item_id":"a","position":-2,"score":1,"features":[1,2]}]`), "items[0].position", ">= 0"},
		{"duplicate positions", withField(t, validImpression, "items", `[{"item_id":"a","position":0,"score":1,"features":[1,2]},{"item_id":"b","position":0,"score":1,"features":[1,2]}]`), "items[1].position", "duplicate position"},
		{"feature length mismatch", withField(t, validImpression, "items", `[{"item_id":"a","position":0,"score":1,"features":[1]}]`), "items[0].features", "has 1 values, feature_names has 2"},
		{"feature not a number", withField(t, validImpression, "items", `[{"item_id":"a","position":0,"score":1,"features":[1,"x"]}]`), "items[0].features", "must be a number"},
		{"duplicate feature names", withField(t, validImpression, "feature_names", `["a","a"]`), "feature_names[1]", "duplicate"},
		{"empty feature name", withField(t, validImpression, "feature_names", `["a",""]`), "feature_names[1]", "required"},
		{"feature names on click", withField(t, validClick, "feature_names", `["a"]`), "feature_names", "only allowed for impression"},
		{"add to cart without item", withField(t, validAddToCart, "item_id", ""), "item_id", "required for add_to_cart"},
		{"zero quantity", withField(t, validAddToCart, "quantity", `0`), "quantity", "must be in [1, 10000]"},
		{"quantity on click", withField(t, validClick, "quantity", `1`), "quantity", "only allowed for add_to_cart and purchase"},
		{"quantity on impression", withField(t, validImpression, "quantity", `1`), "quantity", "only allowed for add_to_cart and purchase"},
		{"dwell without dwell_ms", withField(t, validDwell, "dwell_ms", ""), "dwell_ms", "required for dwell"},
		{"negative dwell", withField(t, validDwell, "dwell_ms", `-1`), "dwell_ms", "must be in"},
		{"dwell over a day", withField(t, validDwell, "dwell_ms", `86400001`), "dwell_ms", "must be in"},
		{"dwell_ms on click", withField(t, validClick, "dwell_ms", `10`), "dwell_ms", "only allowed for dwell"},
		{"dwell_ms on impression", withField(t, validImpression, "dwell_ms", `10`), "dwell_ms", "only allowed for dwell"},
		{"explore on click", withField(t, validClick, "explore", `true`), "explore", "only allowed for impression"},
		{"dwell schema version 2", withField(t, validDwell, "schema_version", `2`), "schema_version", "must be 1"},
		{"query too long", withField(t, validClick, "query", `"`+strings.Repeat("q", MaxQueryBytes+1)+`"`), "query", "longer than"},
		{"body too large", `{"query":"` + strings.Repeat("q", MaxEventBytes) + `"}`, "body", "larger than"},
		// Past smallSet the duplicate checks take a map: the same verdicts.
		{"duplicate position among many items", manyItems(t, smallSet+10, smallSet+5, 3), "items[69].position", "duplicate position"},
		{"duplicate name among many feature names", manyNames(t, smallSet+10, smallSet+7, 2), "feature_names[71]", "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body), testNow)
			if err == nil {
				t.Fatal("Decode accepted a malformed event")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FieldError", err, err)
			}
			field, reason := fe.ClientError()
			if field != tt.wantField || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("got %q: %q, want %q: ...%q...", field, reason, tt.wantField, tt.wantReason)
			}
		})
	}
}

func validImpressionEvent() Event {
	return Event{
		Type: TypeImpression, SchemaVersion: SchemaVersion, Timestamp: testNow, UserID: "u1",
		Surface: SurfaceSearch, FeatureNames: []string{"f1"},
		Items: []ImpressionItem{{ItemID: "a", Position: 0, Score: 1, Features: []float32{0.5}}},
	}
}

func TestEvent_Validate(t *testing.T) {
	nan := math.NaN()
	inf := math.Inf(1)
	tests := []struct {
		name      string
		mutate    func(e *Event)
		wantField string // "" means valid
	}{
		{"valid impression", func(e *Event) {}, ""},
		{"NaN feature", func(e *Event) { e.Items[0].Features[0] = float32(nan) }, "items[0].features[0]"},
		{"infinite score", func(e *Event) { e.Items[0].Score = float32(inf) }, "items[0].score"},
		{"NaN purchase value", func(e *Event) {
			e.Type, e.ItemID, e.Items, e.FeatureNames, e.Surface, e.Value = TypePurchase, "a", nil, nil, "", &nan
		}, "value"},
		{"infinite purchase value", func(e *Event) {
			e.Type, e.ItemID, e.Items, e.FeatureNames, e.Surface, e.Value = TypePurchase, "a", nil, nil, "", &inf
		}, "value"},
		{"invalid UTF-8 user id", func(e *Event) { e.UserID = "u\xff" }, "user_id"},
		{"invalid UTF-8 query", func(e *Event) { e.Query = "q\xff" }, "query"},
		{"position on impression", func(e *Event) { p := 1; e.Position = &p }, "position"},
		{"too many items", func(e *Event) {
			e.FeatureNames = nil
			e.Items = make([]ImpressionItem, MaxItems+1)
			for i := range e.Items {
				e.Items[i] = ImpressionItem{ItemID: "x", Position: i}
			}
		}, "items"},
		{"bundle with control char", func(e *Event) { e.Bundle = "v\t1" }, "bundle"},
		{"empty event", func(e *Event) { *e = Event{} }, "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := validImpressionEvent()
			tt.mutate(&ev)
			err := ev.Validate(testNow)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Fatalf("Validate = %v, want a FieldError on %q", err, tt.wantField)
			}
		})
	}
}

func TestEvent_EnsureID(t *testing.T) {
	t.Run("assigns when empty", func(t *testing.T) {
		var a, b Event
		idA, idB := a.EnsureID(), b.EnsureID()
		if idA == "" || idA == idB || a.EventID != idA {
			t.Errorf("ids %q %q, stored %q", idA, idB, a.EventID)
		}
	})
	t.Run("keeps a client id", func(t *testing.T) {
		e := Event{EventID: "client-1"}
		if got := e.EnsureID(); got != "client-1" {
			t.Errorf("EnsureID = %q", got)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{validClick, validPurchase, validImpression, `{}`, `[]`, `{"items":[{}]}`, `{"timestamp":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(body, testNow)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FieldError", err, err)
			}
			if fe.Field == "" || fe.Reason == "" {
				t.Fatalf("empty field or reason in %#v", fe)
			}
			return
		}
		// An accepted event must survive the producer's encoding unchanged.
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("marshal accepted event: %v", err)
		}
		again, err := Decode(out, testNow)
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, out)
		}
		if !eventsEqual(ev, again) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, again)
		}
	})
}

// FuzzDecodeFast: the one-pass decoder accepts only what the field-by-field
// one accepts, and decodes it to the same event.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{validClick, validPurchase, validImpression, `{}`, `{"items":[null]}`, `{"items":[]}`,
		`{"timestamp":null}`, `{"timestamp":"2026-11-01T11:59:00+02:00"}`, `{"timestamp":"2026-11-01T11:59:00.123456789-07:30"}`,
		`{"items":[{"item_id":"a","extra":1}]}`, `{"ITEMS":[{"ITEM_ID":"a"}],"Type":"click"}`, `{"items":null}`, `{} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeFast(body)
		if !ok {
			return
		}
		slow, err := decodeSlow(body)
		if err != nil {
			t.Fatalf("the fast path accepted what the slow one rejects (%v):\n%s", err, body)
		}
		if !eventsEqual(fast, slow) || fast.Timestamp.String() != slow.Timestamp.String() {
			t.Fatalf("fast and slow paths disagree:\n%+v\n%+v", fast, slow)
		}
	})
}

// benchImpression is an engine impression: ten items, each with its ranker
// features.
func benchImpression(b *testing.B) []byte {
	ev := Event{Type: TypeImpression, SchemaVersion: 1, Timestamp: testNow, UserID: "u1", RequestID: "r1", Surface: "search",
		Bundle: "v1", FeatureNames: make([]string, 30)}
	for i := range ev.FeatureNames {
		ev.FeatureNames[i] = "feature_" + strconv.Itoa(i)
	}
	for i := range 10 {
		it := ImpressionItem{ItemID: "item-" + strconv.Itoa(i), Position: i, Score: 0.5, Features: make([]float32, 30)}
		for j := range it.Features {
			it.Features[j] = float32(i*j) / 7
		}
		ev.Items = append(ev.Items, it)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func BenchmarkDecodeStored(b *testing.B) {
	body := benchImpression(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeStored(body); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeStoredWithoutFeatures: what DecodeStored accepts, the decoder
// that skips features accepts as the same event without them; what only
// it accepts is wrong in the features alone.
func FuzzDecodeStoredWithoutFeatures(f *testing.F) {
	for _, s := range []string{validClick, validPurchase, validImpression, `{}`, `{"items":[null]}`,
		`{"type":"impression","schema_version":1,"timestamp":"2026-11-01T11:59:00Z","user_id":"u1","surface":"search","feature_names":["a","a"],"items":[{"item_id":"x","position":0,"score":1}]}`,
		`{"type":"impression","schema_version":1,"timestamp":"2026-11-01T11:59:00Z","user_id":"u1","surface":"search","feature_names":"a","items":[{"item_id":"x","position":0,"score":1,"features":{}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		full, errFull := DecodeStored(body)
		lite, errLite := DecodeStoredWithoutFeatures(body)
		switch {
		case errFull == nil && errLite != nil:
			t.Fatalf("DecodeStored accepts, without features rejects: %v\n%s", errLite, body)
		case errFull == nil:
			full.FeatureNames = nil
			for i := range full.Items {
				full.Items[i].Features = nil
			}
			if !eventsEqual(full, lite) {
				t.Fatalf("decoders disagree:\n%+v\n%+v", full, lite)
			}
		case errLite == nil:
			var fe *FieldError
			if !errors.As(errFull, &fe) || !strings.HasPrefix(fe.Field, "feature_names") && !strings.Contains(fe.Field, "features") {
				t.Fatalf("without features accepts what DecodeStored rejects for %v\n%s", errFull, body)
			}
		}
	})
}

func BenchmarkDecodeStoredWithoutFeatures(b *testing.B) {
	body := benchImpression(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeStoredWithoutFeatures(body); err != nil {
			b.Fatal(err)
		}
	}
}

// manyItems is validImpression with n items, item dup at the position of
// item of.
func manyItems(t *testing.T, n, dup, of int) string {
	t.Helper()
	var parts []string
	for i := range n {
		pos := i
		if i == dup {
			pos = of
		}
		parts = append(parts, fmt.Sprintf(`{"item_id":"i%d","position":%d,"score":1,"features":[1,2]}`, i, pos))
	}
	return withField(t, validImpression, "items", "["+strings.Join(parts, ",")+"]")
}

// manyNames is validImpression with n feature names (and items with as
// many values), name dup equal to name of.
func manyNames(t *testing.T, n, dup, of int) string {
	t.Helper()
	names, vals := make([]string, n), make([]string, n)
	for i := range n {
		j := i
		if i == dup {
			j = of
		}
		names[i], vals[i] = fmt.Sprintf(`"f%d"`, j), "1"
	}
	doc := withField(t, validImpression, "feature_names", "["+strings.Join(names, ",")+"]")
	v := strings.Join(vals, ",")
	return withField(t, doc, "items", `[{"item_id":"a","position":0,"score":1,"features":[`+v+`]}]`)
}
