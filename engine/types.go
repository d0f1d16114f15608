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
	// Retrieval is hybrid, lexical or dense; empty means
	// engine.retrieval.mode.
	Retrieval string
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
	Sources        *Sources  `json:"sources,omitempty"`  // what each retrieval source said, only with Explain
}

// Sources explains where a hit came from. Ranks are 1-based; a source
// whose list did not hold the hit has no entry (its score is still
// computed for the ranker, and shown here when the source ran).
type Sources struct {
	Lexical *SourceHit `json:"lexical,omitempty"`
	Dense   *SourceHit `json:"dense,omitempty"`
	// LexicalScore and DenseScore are the hit's scores whether or not the
	// source listed it (0 when the source did not run).
	LexicalScore float32 `json:"lexical_score"`
	DenseScore   float32 `json:"dense_score"`
	// TitleTermShare is the share of the query's words in the title.
	TitleTermShare float32 `json:"title_term_share"`
	// ExactID marks the item whose id the query is; it is pinned first.
	ExactID bool `json:"exact_id,omitempty"`
}

// SourceHit is a hit's place in one source's list.
type SourceHit struct {
	Rank  int     `json:"rank"`
	Score float32 `json:"score"`
}

func sourcesOf(c candidate, text bool) *Sources {
	s := &Sources{LexicalScore: c.ret.LexScore, DenseScore: c.ret.DenseScore, TitleTermShare: c.ret.TitleShare, ExactID: c.exactID}
	if c.inLexical {
		s.Lexical = &SourceHit{Rank: c.ret.LexRank + 1, Score: c.ret.LexScore}
	}
	if c.inDense {
		s.Dense = &SourceHit{Rank: c.ret.DenseRank + 1, Score: c.ret.DenseScore}
	}
	if !text && !c.inDense {
		s.DenseScore = 0
	}
	return s
}

// Result is the answer to a search or recommend request.
type Result struct {
	RequestID string `json:"request_id"`
	Bundle    string `json:"bundle"`
	Retrieval string `json:"retrieval,omitempty"` // the mode a search ran with

	Items        []Hit    `json:"items"`
	FeatureNames []string `json:"feature_names,omitempty"` // only with Explain
	Degraded     []string `json:"degraded,omitempty"`      // stages that fell back, e.g. "features", "ranking"
}
