package api

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/internal/strictjson"
)

// Limits on request fields. They protect the engine from work no client
// needs (a 1 MB query, 10k recent items) and are stated in openapi.yaml.
const (
	maxQueryBytes   = 1024
	maxIDBytes      = 256
	maxAge          = 150
	maxRecentItems  = 100
	maxFilterValues = 100
)

// Wire bodies use pointers where "absent" and "zero" must differ (k absent
// means the default, k: 0 is an error) and are separate from the engine
// types so the engine never sees unvalidated input.
type userBody struct {
	ID  *string `json:"id"`
	Age *int    `json:"age"`
}

type filtersBody struct {
	Categories []string `json:"categories"`
	Brands     []string `json:"brands"`
	PriceMin   *float64 `json:"price_min"`
	PriceMax   *float64 `json:"price_max"`
}

// Nested objects decode themselves so that an unknown or mistyped field
// inside them is reported with its full path ("filters.colour"); the outer
// decoder's DisallowUnknownFields would name only the last key.
func (u *userBody) UnmarshalJSON(data []byte) error {
	type plain userBody // no methods, so no recursion
	if err := strictjson.Decode(data, (*plain)(u), "user"); err != nil {
		return err
	}
	return nil
}

func (f *filtersBody) UnmarshalJSON(data []byte) error {
	type plain filtersBody
	if err := strictjson.Decode(data, (*plain)(f), "filters"); err != nil {
		return err
	}
	return nil
}

type searchBody struct {
	Query     *string      `json:"query"`
	K         *int         `json:"k"`
	User      *userBody    `json:"user"`
	Filters   *filtersBody `json:"filters"`
	Explain   bool         `json:"explain"`
	Retrieval *string      `json:"retrieval"`
	// Context is what the client says about the request (page, device,
	// campaign), read by business rules as context["key"].
	Context map[string]string `json:"context"`
}

type recommendBody struct {
	User        *userBody         `json:"user"`
	RecentItems []string          `json:"recent_items"`
	SeedItem    *string           `json:"seed_item"`
	K           *int              `json:"k"`
	Filters     *filtersBody      `json:"filters"`
	Explain     bool              `json:"explain"`
	Context     map[string]string `json:"context"`
	// Sources limits the candidate sources; ExcludeItems are never
	// returned; Order "retrieval" skips the ranker.
	Sources      []string `json:"sources"`
	ExcludeItems []string `json:"exclude_items"`
	Order        *string  `json:"order"`
}

// kLimits are the parts of Config the decoders need; a small value type
// keeps the decoders pure functions of their input.
type kLimits struct {
	max, def int
	recent   int // most recent_items; 0 means maxRecentItems
}

// decodeSearch turns a POST /v1/search body into an engine request or a
// client error naming the offending field. RequestID is left to the caller.
func decodeSearch(body []byte, lim kLimits) (engine.SearchRequest, error) {
	var b searchBody
	if err := decodeStrict(body, &b); err != nil {
		return engine.SearchRequest{}, err
	}
	req := engine.SearchRequest{Explain: b.Explain}
	if b.Query == nil {
		return req, invalid("query", "is required")
	}
	q := strings.TrimSpace(*b.Query)
	if q == "" {
		return req, invalid("query", "must not be empty")
	}
	if len(q) > maxQueryBytes {
		return req, invalid("query", "must be at most %d bytes", maxQueryBytes)
	}
	req.Query = q
	var err error
	if req.K, err = checkK(b.K, lim); err != nil {
		return req, err
	}
	if req.User, err = checkUser(b.User); err != nil {
		return req, err
	}
	if req.Filters, err = checkFilters(b.Filters); err != nil {
		return req, err
	}
	if req.Context, err = checkContext(b.Context); err != nil {
		return req, err
	}
	if b.Retrieval != nil {
		switch *b.Retrieval {
		case engine.ModeHybrid, engine.ModeLexical, engine.ModeDense:
			req.Retrieval = *b.Retrieval
		default:
			return req, invalid("retrieval", "must be %s, %s or %s", engine.ModeHybrid, engine.ModeLexical, engine.ModeDense)
		}
	}
	return req, nil
}

// decodeRecommend turns a POST /v1/recommend body into an engine request.
// It needs user.id, recent_items or seed_item; with a user id alone the
// engine uses the user's stored history, or popular items without one.
func decodeRecommend(body []byte, lim kLimits) (engine.RecommendRequest, error) {
	var b recommendBody
	if err := decodeStrict(body, &b); err != nil {
		return engine.RecommendRequest{}, err
	}
	req := engine.RecommendRequest{Explain: b.Explain}
	var err error
	if req.User, err = checkUser(b.User); err != nil {
		return req, err
	}
	recent := lim.recent
	if recent <= 0 {
		recent = maxRecentItems
	}
	if len(b.RecentItems) > recent {
		return req, invalid("recent_items", "must have at most %d items", recent)
	}
	for i, id := range b.RecentItems {
		if err := checkID("recent_items["+strconv.Itoa(i)+"]", id); err != nil {
			return req, err
		}
	}
	if len(b.RecentItems) > 0 {
		req.RecentItems = b.RecentItems
	}
	if b.SeedItem != nil {
		if err := checkID("seed_item", *b.SeedItem); err != nil {
			return req, err
		}
		req.SeedItem = *b.SeedItem
	}
	if len(req.RecentItems) == 0 && req.SeedItem == "" && req.User.ID == "" {
		return req, invalid("recent_items", "is required unless user.id or seed_item is given")
	}
	if req.K, err = checkK(b.K, lim); err != nil {
		return req, err
	}
	if req.Filters, err = checkFilters(b.Filters); err != nil {
		return req, err
	}
	if req.Context, err = checkContext(b.Context); err != nil {
		return req, err
	}
	for i, s := range b.Sources {
		if !slices.Contains(engine.RecommendSources, s) {
			return req, invalid("sources["+strconv.Itoa(i)+"]", "unknown source %q (want some of %s)", s, strings.Join(engine.RecommendSources, ", "))
		}
	}
	if len(b.Sources) > 0 {
		req.Sources = b.Sources
	}
	if len(b.ExcludeItems) > maxExcludeItems {
		return req, invalid("exclude_items", "must have at most %d items", maxExcludeItems)
	}
	for i, id := range b.ExcludeItems {
		if err := checkID("exclude_items["+strconv.Itoa(i)+"]", id); err != nil {
			return req, err
		}
	}
	if len(b.ExcludeItems) > 0 {
		req.ExcludeItems = b.ExcludeItems
	}
	if b.Order != nil {
		if *b.Order != engine.OrderRanked && *b.Order != engine.OrderRetrieval {
			return req, invalid("order", "must be %q or %q", engine.OrderRanked, engine.OrderRetrieval)
		}
		req.Order = *b.Order
	}
	return req, nil
}

// maxExcludeItems bounds a recommendation's exclude_items.
const maxExcludeItems = 1000

// Bounds of a request's context.
const (
	maxContextKeys       = 32
	maxContextKeyBytes   = 64
	maxContextValueBytes = 256
)

// checkContext bounds the request context rules read: a few short keys
// and values without control characters.
func checkContext(ctx map[string]string) (map[string]string, error) {
	if len(ctx) == 0 {
		return nil, nil
	}
	if len(ctx) > maxContextKeys {
		return nil, invalid("context", "must have at most %d keys", maxContextKeys)
	}
	for k, v := range ctx {
		field := "context." + k
		switch {
		case k == "" || len(k) > maxContextKeyBytes:
			return nil, invalid("context", "keys must be 1 to %d bytes", maxContextKeyBytes)
		case strings.IndexFunc(k, unicode.IsControl) >= 0:
			return nil, invalid("context", "keys must not contain control characters")
		case len(v) > maxContextValueBytes:
			return nil, invalid(field, "must be at most %d bytes", maxContextValueBytes)
		case strings.IndexFunc(v, unicode.IsControl) >= 0:
			return nil, invalid(field, "must not contain control characters")
		}
	}
	return ctx, nil
}

// decodeStrict decodes exactly one JSON object into v, rejecting unknown
// fields, with errors naming the field. json copies strings out of body, so
// nothing decoded aliases fiber's reused buffers.
func decodeStrict(body []byte, v any) error {
	if err := strictjson.Decode(body, v, ""); err != nil {
		return invalid(err.Field, "%s", err.Reason)
	}
	return nil
}

func checkK(k *int, lim kLimits) (int, error) {
	if k == nil {
		return lim.def, nil
	}
	if *k < 1 || *k > lim.max {
		return 0, invalid("k", "must be between 1 and %d", lim.max)
	}
	return *k, nil
}

func checkID(field, id string) error {
	if strings.TrimSpace(id) == "" {
		return invalid(field, "must not be empty")
	}
	if len(id) > maxIDBytes {
		return invalid(field, "must be at most %d bytes", maxIDBytes)
	}
	// Ids become Redis keys, Kafka keys and log fields, where control
	// characters cause trouble far from the request that sent them.
	if strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return invalid(field, "must not contain control characters")
	}
	return nil
}

func checkUser(u *userBody) (engine.User, error) {
	var out engine.User
	if u == nil {
		return out, nil
	}
	if u.ID != nil {
		if err := checkID("user.id", *u.ID); err != nil {
			return out, err
		}
		out.ID = *u.ID
	}
	if u.Age != nil {
		if *u.Age < 0 || *u.Age > maxAge {
			return out, invalid("user.age", "must be between 0 and %d", maxAge)
		}
		out.Age = *u.Age
	}
	return out, nil
}

func checkFilters(f *filtersBody) (engine.Filters, error) {
	var out engine.Filters
	if f == nil {
		return out, nil
	}
	for _, l := range []struct {
		field string
		vals  []string
	}{{"filters.categories", f.Categories}, {"filters.brands", f.Brands}} {
		if len(l.vals) > maxFilterValues {
			return out, invalid(l.field, "must have at most %d values", maxFilterValues)
		}
		for i, v := range l.vals {
			if err := checkID(l.field+"["+strconv.Itoa(i)+"]", v); err != nil {
				return out, err
			}
		}
	}
	for _, p := range []struct {
		field string
		v     *float64
	}{{"filters.price_min", f.PriceMin}, {"filters.price_max", f.PriceMax}} {
		if p.v != nil && (math.IsNaN(*p.v) || math.IsInf(*p.v, 0) || *p.v < 0) {
			return out, invalid(p.field, "must be a finite number >= 0")
		}
	}
	if f.PriceMin != nil && f.PriceMax != nil && *f.PriceMin > *f.PriceMax {
		return out, invalid("filters.price_min", "must be <= filters.price_max")
	}
	if len(f.Categories) > 0 {
		out.Categories = f.Categories
	}
	if len(f.Brands) > 0 {
		out.Brands = f.Brands
	}
	out.PriceMin, out.PriceMax = f.PriceMin, f.PriceMax
	return out, nil
}
