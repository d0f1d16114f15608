package engine

// Filters are structured constraints a client puts on one request. They are
// applied inside retrieval together with the configured filter rules.
type Filters struct {
	Categories []string `json:"categories,omitempty"`
	Brands     []string `json:"brands,omitempty"`
	PriceMin   *float64 `json:"price_min,omitempty"`
	PriceMax   *float64 `json:"price_max,omitempty"`
}

// User is what a request says about the person it is for.
type User struct {
	ID  string `json:"id,omitempty"`
	Age int    `json:"age,omitempty"` // 0 = unknown
}

// SearchRequest is a text query.
type SearchRequest struct {
	RequestID string
	Query     string
	K         int
	User      User
	Filters   Filters
	Explain   bool
}

// RecommendRequest asks for items for a user (from recent item ids, most
// recent first) or items similar to a seed item.
type RecommendRequest struct {
	RequestID   string
	User        User
	RecentItems []string
	SeedItem    string
	K           int
	Filters     Filters
	Explain     bool
}

// Hit is one returned item.
type Hit struct {
	ID             string    `json:"id"`
	Title          string    `json:"title"`
	Brand          string    `json:"brand,omitempty"`
	Category       string    `json:"category,omitempty"`
	Price          float64   `json:"price"`
	Score          float32   `json:"score"`
	RetrievalScore float32   `json:"retrieval_score"`
	RetrievalRank  int       `json:"retrieval_rank"`
	Features       []float32 `json:"features,omitempty"` // only with Explain
	Rules          []string  `json:"rules,omitempty"`    // business rules that fired, only with Explain
}

// Result is the answer to a search or recommend request.
type Result struct {
	RequestID    string   `json:"request_id"`
	Bundle       string   `json:"bundle"`
	Items        []Hit    `json:"items"`
	FeatureNames []string `json:"feature_names,omitempty"` // only with Explain
	Degraded     []string `json:"degraded,omitempty"`      // stages that fell back, e.g. "features", "ranking"
}
