package catalog

import (
	"strings"
	"time"
)

// Item is one entry of the inventory. Field names are the wire names used by
// the JSONL and CSV readers and by the bundle's items file.
type Item struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	Brand       string    `json:"brand,omitempty"`
	Category    string    `json:"category,omitempty"`
	Tags        []string  `json:"tags,omitempty"`
	Price       float64   `json:"price"`
	AgeRating   int       `json:"age_rating"` // minimum age of the audience, 0 = everyone
	Available   bool      `json:"available"`
	CreatedAt   time.Time `json:"created_at"`
	// Popularity is an optional prior (for example historical interactions);
	// it feeds the popularity feature until real-time counters exist.
	Popularity float64 `json:"popularity,omitempty"`
}

// Text is the string the embedding model sees for an item. Title first,
// because encoders that truncate keep the most informative words.
func (it *Item) Text() string {
	var b strings.Builder
	b.WriteString(it.Title)
	for _, s := range []string{it.Brand, it.Category, strings.Join(it.Tags, " "), it.Description} {
		if s != "" {
			b.WriteString(" ")
			b.WriteString(s)
		}
	}
	return b.String()
}
