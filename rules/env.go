package rules

import (
	"time"

	"github.com/recsys-dev/recsys/catalog"
)

// Env is what an expression sees. The engine builds one per request with
// NewEnv and moves it from item to item with SetItem, so evaluating a rule
// copies a few words rather than building a map per item.
type Env struct {
	Item  ItemEnv `expr:"item"`
	User  UserEnv `expr:"user"`
	Query string  `expr:"query"`

	now time.Time // fixes item.age_days for the whole request
}

// ItemEnv is the item part of Env.
type ItemEnv struct {
	ID        string   `expr:"id"`
	Title     string   `expr:"title"`
	Brand     string   `expr:"brand"`
	Category  string   `expr:"category"`
	Tags      []string `expr:"tags"`
	Price     float64  `expr:"price"`
	AgeRating int      `expr:"age_rating"`
	Available bool     `expr:"available"`
	// AgeDays is days since the item was created; 0 when the creation date
	// is unknown or in the future.
	AgeDays    float64 `expr:"age_days"`
	Popularity float64 `expr:"popularity"`
}

// UserEnv is the user part of Env.
type UserEnv struct {
	ID  string `expr:"id"`
	Age int    `expr:"age"` // 0 = unknown
}

// NewEnv starts the environment of one request.
func NewEnv(userID string, userAge int, query string, now time.Time) *Env {
	return &Env{User: UserEnv{ID: userID, Age: userAge}, Query: query, now: now}
}

// SetItem points the environment at it. The strings and tags are shared with
// it, not copied; the catalog is immutable within a bundle.
func (e *Env) SetItem(it *catalog.Item) {
	var age float64
	if !it.CreatedAt.IsZero() {
		age = max(e.now.Sub(it.CreatedAt).Hours()/24, 0)
	}
	e.Item = ItemEnv{
		ID:         it.ID,
		Title:      it.Title,
		Brand:      it.Brand,
		Category:   it.Category,
		Tags:       it.Tags,
		Price:      it.Price,
		AgeRating:  it.AgeRating,
		Available:  it.Available,
		AgeDays:    age,
		Popularity: it.Popularity,
	}
}
