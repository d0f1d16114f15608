package feedback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/google/uuid"

	"github.com/recsys-dev/recsys/internal/strictjson"
)

// Event types.
const (
	TypeImpression = "impression"
	TypeClick      = "click"
	TypeAddToCart  = "add_to_cart"
	TypePurchase   = "purchase"
	TypeDwell      = "dwell"
)

// Types lists every event type, in the order documentation shows them.
var Types = []string{TypeImpression, TypeClick, TypeAddToCart, TypePurchase, TypeDwell}

// Surfaces an impression can come from.
const (
	SurfaceSearch    = "search"
	SurfaceRecommend = "recommend"
)

// SchemaVersion is the schema version this package writes. Versions are per
// event type (see schemas): a consumer that sees a version its build does
// not know must not guess its meaning, so such events are refused (and dead
// lettered when they arrive in a batch or a replay).
const SchemaVersion = 1

// schemas maps an event type to the payload validator of each schema
// version it accepts. The envelope (type, version, ids, timestamp) is the
// same for every version; only the payload differs. A new version of one
// type is added here without touching the others.
var schemas = map[string]map[int]func(*Event) error{
	TypeImpression: {1: (*Event).validateImpression},
	TypeClick:      {1: (*Event).validateAction},
	TypeAddToCart:  {1: (*Event).validateAction},
	TypePurchase:   {1: (*Event).validateAction},
	TypeDwell:      {1: (*Event).validateAction},
}

// MaxDwell bounds dwell_ms: a dwell longer than a day is a client bug (a tab
// left open), not a signal.
const MaxDwell = 24 * time.Hour

// Limits on outside input. They are generous for real traffic and exist so
// that one request cannot make the log, or the training job, hold megabytes
// of junk.
const (
	MaxEventBytes   = 1 << 20
	MaxIDBytes      = 256
	MaxQueryBytes   = 1024
	MaxItems        = 1000
	MaxFeatureNames = 1024
	MaxFutureSkew   = 5 * time.Minute
	MaxEventAge     = 30 * 24 * time.Hour
)

// Event is one feedback event, schema version 1. It is the JSON body clients
// post and the value of every record on the events topic.
type Event struct {
	// EventID is the idempotency key; EnsureID assigns a UUID when a client
	// sent none, so every record on the topic carries one.
	EventID       string    `json:"event_id,omitempty"`
	Type          string    `json:"type"`
	SchemaVersion int       `json:"schema_version"`
	Timestamp     time.Time `json:"timestamp"`
	UserID        string    `json:"user_id"`
	// ItemID is required for clicks and purchases and absent on impressions,
	// whose items are in Items.
	ItemID string `json:"item_id,omitempty"`
	// RequestID links an action to the impression it came from.
	RequestID string `json:"request_id,omitempty"`
	// Position is where the acted-on item was shown, when the client knows.
	Position *int `json:"position,omitempty"`
	// Value is the purchase amount; only purchases carry it.
	Value *float64 `json:"value,omitempty"`
	// Quantity is how many units were added to the cart or bought
	// (add_to_cart and purchase only; absent means 1).
	Quantity *int `json:"quantity,omitempty"`
	// DwellMS is how long the item's page was in view, in milliseconds;
	// required for dwell and only allowed there.
	DwellMS *int64 `json:"dwell_ms,omitempty"`
	Surface string `json:"surface,omitempty"`
	Query   string `json:"query,omitempty"`
	// Bundle is the bundle version that served the impression, so training
	// can tell generations apart.
	Bundle       string           `json:"bundle,omitempty"`
	FeatureNames []string         `json:"feature_names,omitempty"`
	Items        []ImpressionItem `json:"items,omitempty"`
	// Explore marks an impression whose shown order was randomly permuted
	// from the ranked order (result randomization), so that training can
	// estimate how much position alone draws clicks. Impressions only.
	Explore bool `json:"explore,omitempty"`
}

// ImpressionItem is one served item of an impression with the feature vector
// that the ranker actually saw, in the order of Event.FeatureNames.
type ImpressionItem struct {
	ItemID   string    `json:"item_id"`
	Position int       `json:"position"`
	Score    float32   `json:"score"`
	Features []float32 `json:"features,omitempty"`
	// Explore marks an item an exploration slot placed (a business rule),
	// so training can tell its clicks from those the ranker earned.
	Explore bool `json:"explore,omitempty"`
}

// FieldError says which field of an event is wrong and why. Field is a JSON
// path such as "items[3].item_id", or "body" when the document as a whole is
// malformed.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// ClientError reports the error as the client's fault, for the HTTP layer to
// answer 400 with the field and the reason.
func (e *FieldError) ClientError() (field, reason string) { return e.Field, e.Reason }

func fieldErr(field, reason string) *FieldError { return &FieldError{Field: field, Reason: reason} }

// EnsureID assigns a random UUID as EventID when it is empty and returns the
// ID. The HTTP layer calls it after Decode so it can return the ID to clients
// that did not send one.
func (e *Event) EnsureID() string {
	if e.EventID == "" {
		e.EventID = uuid.NewString()
	}
	return e.EventID
}

// wireEvent shadows the fields whose decoding errors encoding/json cannot
// name precisely: timestamps, to give one message for every malformed form,
// and items, which are decoded one by one so that errors carry the index.
type wireEvent struct {
	*eventAlias
	Timestamp json.RawMessage   `json:"timestamp"`
	Items     []json.RawMessage `json:"items,omitempty"`
}

// eventAlias drops Event's methods so that decoding it does not recurse.
type eventAlias Event

// Decode parses one event from an outside body and validates it against now.
// Parsing is strict: unknown fields, trailing data and more than one JSON
// value are rejected. Every error is a *FieldError.
func Decode(body []byte, now time.Time) (Event, error) {
	ev, err := unmarshalStrict(body)
	if err != nil {
		return Event{}, err
	}
	if err := ev.Validate(now); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// unmarshalStrict parses without the validation rules, which the reader
// applies separately (replayed events are older than the ingestion window).
func unmarshalStrict(body []byte) (Event, error) {
	if len(body) > MaxEventBytes {
		return Event{}, fieldErr("body", fmt.Sprintf("larger than %d bytes", MaxEventBytes))
	}
	if ev, ok := decodeFast(body); ok {
		return ev, nil
	}
	return decodeSlow(body)
}

// fastEvent decodes a whole event in one pass: timestamps by time.Time
// (strict RFC 3339), items in place. Pointers let a null item be told from
// an empty one.
type fastEvent struct {
	*eventAlias
	Items []*ImpressionItem `json:"items,omitempty"`
}

// decodeFast is unmarshalStrict for well-formed bodies, the usual case:
// one strict decoder over the whole document rather than one per item
// (a tenth of the cost for an impression of ten items). It accepts a
// subset of what decodeSlow accepts, with the same result, and gives up
// on anything else so that decodeSlow can name the field at fault.
func decodeFast(body []byte) (Event, bool) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Event{}, false
	}
	var ev Event
	w := fastEvent{eventAlias: (*eventAlias)(&ev)}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if dec.Decode(&w) != nil || dec.More() {
		return Event{}, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, false
	}
	if len(w.Items) > MaxItems {
		return Event{}, false
	}
	if w.Items != nil {
		ev.Items = make([]ImpressionItem, len(w.Items))
		for i, it := range w.Items {
			if it == nil {
				return Event{}, false
			}
			ev.Items[i] = *it
		}
	}
	return ev, true
}

// decodeSlow decodes the timestamp and each item on its own, so an error
// names the field: "timestamp", "items[3].item_id".
func decodeSlow(body []byte) (Event, error) {
	var ev Event
	w := wireEvent{eventAlias: (*eventAlias)(&ev)}
	if err := decodeOne(body, &w, ""); err != nil {
		return Event{}, err
	}
	if len(w.Timestamp) > 0 && !bytes.Equal(w.Timestamp, []byte("null")) {
		var s string
		if err := json.Unmarshal(w.Timestamp, &s); err != nil {
			return Event{}, fieldErr("timestamp", "must be an RFC 3339 string")
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Event{}, fieldErr("timestamp", "must be an RFC 3339 string")
		}
		ev.Timestamp = ts
	}
	if w.Items != nil {
		if len(w.Items) > MaxItems {
			return Event{}, fieldErr("items", fmt.Sprintf("more than %d items", MaxItems))
		}
		ev.Items = make([]ImpressionItem, len(w.Items))
		for i, raw := range w.Items {
			if err := decodeOne(raw, &ev.Items[i], "items["+strconv.Itoa(i)+"]"); err != nil {
				return Event{}, err
			}
		}
	}
	return ev, nil
}

// decodeOne decodes exactly one JSON object into v, rejecting unknown fields
// and trailing data, with errors naming the field under prefix.
func decodeOne(data []byte, v any, prefix string) error {
	if err := strictjson.Decode(data, v, prefix); err != nil {
		// Fields of the embedded alias come with its type name in front.
		return fieldErr(strings.Replace(err.Field, "eventAlias.", "", 1), err.Reason)
	}
	return nil
}

// Validate checks an event against the schema with now as the current time:
// the envelope first (type, version, ids, timestamp window), then the
// payload of the event's type. It is for events built in-process, such as
// the impressions the engine emits; Decode calls it for outside input.
func (e *Event) Validate(now time.Time) error {
	if err := e.validateEnvelope(); err != nil {
		return err
	}
	if err := e.checkTimeWindow(now); err != nil {
		return err
	}
	return e.validatePayload()
}

// DecodeStored parses a record value read back from the event log
// (strictly, as Decode does) and validates it with ValidateStored.
func DecodeStored(value []byte) (Event, error) {
	ev, err := unmarshalStrict(value)
	if err != nil {
		return Event{}, err
	}
	return ev, ev.ValidateStored()
}

// DecodeStoredWithoutFeatures is DecodeStored for consumers that do not
// read the ranker features an impression carries (the counter updater):
// feature_names and items[].features are skipped, not parsed, and come
// back empty. They are most of an impression's bytes and nearly all of its
// parsing time. Everything else is decoded and validated as DecodeStored
// does, with the same errors; a fault inside the features goes unseen.
func DecodeStoredWithoutFeatures(value []byte) (Event, error) {
	if ev, ok := decodeWithoutFeatures(value); ok {
		return ev, ev.ValidateStored()
	}
	ev, err := DecodeStored(value)
	ev.FeatureNames = nil
	for i := range ev.Items {
		ev.Items[i].Features = nil
	}
	return ev, err
}

// liteEvent is fastEvent with the features left raw.
type liteEvent struct {
	*eventAlias
	FeatureNames json.RawMessage `json:"feature_names,omitempty"`
	Items        []*liteItem     `json:"items,omitempty"`
}

type liteItem struct {
	ItemID   string          `json:"item_id"`
	Position int             `json:"position"`
	Score    float32         `json:"score"`
	Features json.RawMessage `json:"features,omitempty"`
	Explore  bool            `json:"explore,omitempty"`
}

// decodeWithoutFeatures is decodeFast skipping the features; anything it
// does not accept goes to DecodeStored for the error.
func decodeWithoutFeatures(body []byte) (Event, bool) {
	trimmed := bytes.TrimSpace(body)
	if len(body) > MaxEventBytes || len(trimmed) == 0 || trimmed[0] != '{' {
		return Event{}, false
	}
	var ev Event
	w := liteEvent{eventAlias: (*eventAlias)(&ev)}
	// goccy/go-json: the counters consumer decodes every impression.
	dec := gojson.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if dec.Decode(&w) != nil {
		return Event{}, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, false
	}
	if len(w.Items) > MaxItems || !rawArray(w.FeatureNames) {
		return Event{}, false
	}
	if w.Items != nil {
		ev.Items = make([]ImpressionItem, len(w.Items))
		for i, it := range w.Items {
			if it == nil || !rawArray(it.Features) {
				return Event{}, false
			}
			ev.Items[i] = ImpressionItem{ItemID: it.ItemID, Position: it.Position, Score: it.Score, Explore: it.Explore}
		}
	}
	return ev, true
}

// rawArray reports whether a skipped value is absent, null or an array,
// the shapes DecodeStored accepts for a list.
func rawArray(raw json.RawMessage) bool {
	return len(raw) == 0 || raw[0] == '[' || string(raw) == "null"
}

// KnownType reports whether t is an event type, so callers keep
// client-chosen strings out of metric labels.
func KnownType(t string) bool {
	_, ok := schemas[t]
	return ok
}

// ValidateStored is Validate without the ingestion time window, for
// events replayed from the log and for the producer's last check.
func (e *Event) ValidateStored() error {
	if err := e.validateEnvelope(); err != nil {
		return err
	}
	return e.validatePayload()
}

func (e *Event) validateEnvelope() error {
	versions, ok := schemas[e.Type]
	switch {
	case e.Type == "":
		return fieldErr("type", "required")
	case !ok:
		return fieldErr("type", "must be one of "+strings.Join(Types, ", "))
	}
	if _, ok := versions[e.SchemaVersion]; !ok {
		return fieldErr("schema_version", "must be 1")
	}
	if e.EventID != "" {
		if err := checkID("event_id", e.EventID); err != nil {
			return err
		}
	}
	if e.UserID == "" {
		return fieldErr("user_id", "required")
	}
	if err := checkID("user_id", e.UserID); err != nil {
		return err
	}
	if e.RequestID != "" {
		if err := checkID("request_id", e.RequestID); err != nil {
			return err
		}
	}
	if e.Timestamp.IsZero() {
		return fieldErr("timestamp", "required")
	}
	return nil
}

func (e *Event) checkTimeWindow(now time.Time) error {
	if e.Timestamp.After(now.Add(MaxFutureSkew)) {
		return fieldErr("timestamp", "more than 5 minutes in the future")
	}
	if e.Timestamp.Before(now.Add(-MaxEventAge)) {
		return fieldErr("timestamp", "older than 30 days")
	}
	return nil
}

func (e *Event) validatePayload() error {
	if e.Bundle != "" {
		if err := checkID("bundle", e.Bundle); err != nil {
			return err
		}
	}
	if e.Surface != "" && e.Surface != SurfaceSearch && e.Surface != SurfaceRecommend {
		return fieldErr("surface", "must be one of search, recommend")
	}
	if len(e.Query) > MaxQueryBytes {
		return fieldErr("query", fmt.Sprintf("longer than %d bytes", MaxQueryBytes))
	}
	if !utf8.ValidString(e.Query) {
		return fieldErr("query", "must be valid UTF-8")
	}
	if e.Position != nil && *e.Position < 0 {
		return fieldErr("position", "must be >= 0")
	}
	// validateEnvelope has checked that the type and version exist.
	return schemas[e.Type][e.SchemaVersion](e)
}

// validateAction checks the action types (click, add_to_cart, purchase,
// dwell): one item, no served list, and the fields of the type.
func (e *Event) validateAction() error {
	if e.ItemID == "" {
		return fieldErr("item_id", "required for "+e.Type)
	}
	if err := checkID("item_id", e.ItemID); err != nil {
		return err
	}
	if e.Value != nil {
		if e.Type != TypePurchase {
			return fieldErr("value", "only allowed for purchase")
		}
		if v := *e.Value; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fieldErr("value", "must be a finite number >= 0")
		}
	}
	if e.Quantity != nil {
		if e.Type != TypeAddToCart && e.Type != TypePurchase {
			return fieldErr("quantity", "only allowed for add_to_cart and purchase")
		}
		if q := *e.Quantity; q < 1 || q > 10000 {
			return fieldErr("quantity", "must be in [1, 10000]")
		}
	}
	if e.Explore {
		return fieldErr("explore", "only allowed for impression")
	}
	switch {
	case e.Type == TypeDwell && e.DwellMS == nil:
		return fieldErr("dwell_ms", "required for dwell")
	case e.Type != TypeDwell && e.DwellMS != nil:
		return fieldErr("dwell_ms", "only allowed for dwell")
	case e.DwellMS != nil && (*e.DwellMS < 0 || *e.DwellMS > MaxDwell.Milliseconds()):
		return fieldErr("dwell_ms", "must be in [0, 86400000]")
	}
	if len(e.Items) > 0 {
		return fieldErr("items", "only allowed for impression")
	}
	if len(e.FeatureNames) > 0 {
		return fieldErr("feature_names", "only allowed for impression")
	}
	return nil
}

func (e *Event) validateImpression() error {
	if e.ItemID != "" {
		return fieldErr("item_id", "not allowed for impression, use items")
	}
	if e.Position != nil {
		return fieldErr("position", "not allowed for impression, use items[].position")
	}
	if e.Value != nil {
		return fieldErr("value", "only allowed for purchase")
	}
	if e.Quantity != nil {
		return fieldErr("quantity", "only allowed for add_to_cart and purchase")
	}
	if e.DwellMS != nil {
		return fieldErr("dwell_ms", "only allowed for dwell")
	}
	if e.Surface == "" {
		return fieldErr("surface", "required for impression")
	}
	if len(e.FeatureNames) > MaxFeatureNames {
		return fieldErr("feature_names", fmt.Sprintf("more than %d names", MaxFeatureNames))
	}
	// Field names are built only for an error: a valid impression (each
	// served request writes one) allocates nothing here.
	var names map[string]struct{} // past smallSet names
	if len(e.FeatureNames) > smallSet {
		names = make(map[string]struct{}, len(e.FeatureNames))
	}
	for i, name := range e.FeatureNames {
		field := func() string { return "feature_names[" + strconv.Itoa(i) + "]" }
		if name == "" {
			return fieldErr(field(), "required")
		}
		if reason := idProblem(name); reason != "" {
			return fieldErr(field(), reason)
		}
		if seen(names, e.FeatureNames[:i], name) {
			return fieldErr(field(), "duplicate feature name")
		}
	}
	if len(e.Items) == 0 {
		return fieldErr("items", "required for impression")
	}
	if len(e.Items) > MaxItems {
		return fieldErr("items", fmt.Sprintf("more than %d items", MaxItems))
	}
	var positions map[int]struct{} // past smallSet items
	if len(e.Items) > smallSet {
		positions = make(map[int]struct{}, len(e.Items))
	}
	for i := range e.Items {
		if err := e.validateItem(i, positions); err != nil {
			return err
		}
	}
	return nil
}

func (e *Event) validateItem(i int, positions map[int]struct{}) error {
	it := &e.Items[i]
	prefix := func() string { return "items[" + strconv.Itoa(i) + "]." }
	if it.ItemID == "" {
		return fieldErr(prefix()+"item_id", "required")
	}
	if reason := idProblem(it.ItemID); reason != "" {
		return fieldErr(prefix()+"item_id", reason)
	}
	if it.Position < 0 {
		return fieldErr(prefix()+"position", "must be >= 0")
	}
	if positions != nil {
		if _, dup := positions[it.Position]; dup {
			return fieldErr(prefix()+"position", "duplicate position")
		}
		positions[it.Position] = struct{}{}
	} else if slices.ContainsFunc(e.Items[:i], func(o ImpressionItem) bool { return o.Position == it.Position }) {
		return fieldErr(prefix()+"position", "duplicate position")
	}
	if !finite32(it.Score) {
		return fieldErr(prefix()+"score", "must be finite")
	}
	if len(it.Features) != len(e.FeatureNames) {
		return fieldErr(prefix()+"features", fmt.Sprintf("has %d values, feature_names has %d", len(it.Features), len(e.FeatureNames)))
	}
	for j, f := range it.Features {
		if !finite32(f) {
			return fieldErr(prefix()+"features["+strconv.Itoa(j)+"]", "must be finite")
		}
	}
	return nil
}

func finite32(f float32) bool {
	return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
}

// checkID applies the rules every identifier shares: ids end up as Kafka
// keys, Redis keys and log fields, where control characters and unbounded
// lengths cause trouble far from the request that sent them.
func checkID(field, s string) error {
	if reason := idProblem(s); reason != "" {
		return fieldErr(field, reason)
	}
	return nil
}

// idProblem is what breaks checkID's rules in s, or "".
func idProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > MaxIDBytes {
		return fmt.Sprintf("longer than %d bytes", MaxIDBytes)
	}
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

// smallSet is how many values a duplicate check compares pairwise before
// it takes a map.
const smallSet = 64

// seen reports whether name is among before, through set (adding name to
// it) when there is one.
func seen(set map[string]struct{}, before []string, name string) bool {
	if set == nil {
		return slices.Contains(before, name)
	}
	if _, dup := set[name]; dup {
		return true
	}
	set[name] = struct{}{}
	return false
}
