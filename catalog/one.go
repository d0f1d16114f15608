package catalog

import (
	"bytes"
	"slices"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
)

// ParseItem decodes and validates one item as a JSONL catalog row, with
// the same rules (strict fields, a missing available meaning true, every
// field problem reported). A fault is a *ValidationError whose problems
// name the field; their line is 1.
func ParseItem(b []byte) (Item, error) {
	b = bytes.TrimSpace(b)
	c := &checker{}
	if len(b) == 0 {
		c.add(1, "", "", "empty")
		return Item{}, c.err()
	}
	l := jsonLine{line: 1, raw: b}
	decodeJSON(&l)
	it, ok := checkJSONLine(c, &l)
	if err := c.err(); err != nil || !ok {
		return Item{}, err
	}
	return it, nil
}

// Patchable are the fields a partial update may set; id is not one of
// them (an item's id is its identity: delete it and put another).
var Patchable = []string{"title", "description", "brand", "category", "tags", "price", "age_rating", "available", "created_at", "popularity"}

// Check validates one decoded item as a catalog row (its problems' line
// is 1).
func Check(it *Item) error {
	var c checker
	c.check(1, it, 0)
	return c.err()
}

// Patch applies a partial update, a JSON object of some Patchable fields,
// to it and validates the result as a whole row. An unknown field or "id"
// is refused by name, a value of the wrong type names its field. It
// decodes with goccy/go-json, as the items topic does: partial updates
// come by the thousand a second.
func Patch(it Item, patch []byte) (Item, error) {
	var fields map[string]gojson.RawMessage
	if err := gojson.Unmarshal(patch, &fields); err != nil || fields == nil {
		return Item{}, &ValidationError{Problems: []Problem{{Line: 1, ID: safeID(it.ID), Reason: "must be a JSON object of fields to change"}}}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	c := &checker{}
	id := safeID(it.ID)
	var bad fieldSet
	it.Tags = slices.Clone(it.Tags)
	for _, k := range keys {
		raw := fields[k]
		var err error
		switch k {
		case "title":
			err = gojson.Unmarshal(raw, &it.Title)
		case "description":
			err = gojson.Unmarshal(raw, &it.Description)
		case "brand":
			err = gojson.Unmarshal(raw, &it.Brand)
		case "category":
			err = gojson.Unmarshal(raw, &it.Category)
		case "tags":
			it.Tags = nil
			err = gojson.Unmarshal(raw, &it.Tags)
		case "price":
			err = gojson.Unmarshal(raw, &it.Price)
		case "age_rating":
			err = gojson.Unmarshal(raw, &it.AgeRating)
		case "available":
			err = gojson.Unmarshal(raw, &it.Available)
		case "popularity":
			err = gojson.Unmarshal(raw, &it.Popularity)
		case "created_at":
			var s string
			if err = gojson.Unmarshal(raw, &s); err == nil {
				var t time.Time
				if t, err = parseTime(s); err == nil {
					it.CreatedAt = t
				}
			}
		case "id":
			c.add(1, id, k, "cannot be changed")
			continue
		default:
			c.add(1, id, k, "unknown field (patchable: "+strings.Join(Patchable, ", ")+")")
			continue
		}
		if err != nil {
			c.add(1, id, k, "undecodable: "+err.Error())
			bad |= decodedFlags[k] // not also reported as out of range
		}
	}
	if err := c.err(); err != nil {
		return Item{}, err
	}
	c.check(1, &it, bad)
	if err := c.err(); err != nil {
		return Item{}, err
	}
	return it, nil
}

// decodedFlags are the fields check would report again when their value
// could not be decoded.
var decodedFlags = map[string]fieldSet{"price": fPrice, "age_rating": fAgeRating, "popularity": fPopularity, "created_at": fCreatedAt}

// SameText reports whether a and b give the same text to the indexes
// (the fields the embedding and the lexical index read), so a change
// elsewhere (price, availability) needs no re-indexing.
func SameText(a, b *Item) bool {
	return a.Title == b.Title && a.Brand == b.Brand && a.Category == b.Category &&
		a.Description == b.Description && slices.Equal(a.Tags, b.Tags)
}
