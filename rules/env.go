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
	// Surface is "search" or "recommend".
	Surface string `expr:"surface"`
	// Hour (0-23) and Weekday (0 Sunday .. 6) are the request's time in
	// the rules' time zone.
	Hour    int `expr:"hour"`
	Weekday int `expr:"weekday"`
	// Context is what the client sent as the request's context (page,
	// device, campaign, ...); a missing key reads as "".
	Context map[string]string `expr:"context"`

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
	// Recent are the user's latest actions' item ids, most recent first
	// (sent with a recommendation, or as the counter updater stored them).
	Recent []string `expr:"recent"`
}

// NewEnv starts the environment of one request, its hour and weekday in
// UTC (Set.NewEnv uses the rules' time zone).
func NewEnv(userID string, userAge int, query string, now time.Time) *Env {
	utc := now.UTC()
	return &Env{User: UserEnv{ID: userID, Age: userAge}, Query: query, now: now, Hour: utc.Hour(), Weekday: int(utc.Weekday())}
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
