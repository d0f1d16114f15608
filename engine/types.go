package engine

import "github.com/recsys-dev/recsys/rules"

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
	// Context is what the client says about the request (page, device,
	// campaign); business rules read it as context["key"].
	Context map[string]string
	// DryRules, when set, replaces the live rules for this request, which
	// then emits no impression (a dry run).
	DryRules *rules.Set
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
	Context     map[string]string
	DryRules    *rules.Set
	// Sources, when set, limits the candidate sources (RecommendSources)
	// to these; ExcludeItems are item ids never to return (e.g. what the
	// user has seen beyond its history).
	Sources      []string
	ExcludeItems []string
	// Order is OrderRanked (the default) or OrderRetrieval: the merged
	// candidates in retrieval's order, the ranker skipped.
	Order string
}

// Orders of a recommendation.
const (
	OrderRanked    = "ranked"
	OrderRetrieval = "retrieval"
)

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
	// Explore marks an item an exploration slot placed; Pinned one a pin
	// rule placed.
	Explore bool `json:"explore,omitempty"`
	Pinned  bool `json:"pinned,omitempty"`
	// The rest is only with Explain.
	Rules   []string `json:"rules,omitempty"`   // business rules that changed it
	Sources *Sources `json:"sources,omitempty"` // what each retrieval source said
	// RankerScore and RankerRank (1-based) are the ranker's, before any
	// business rule; Effects what each rule then did.
	RankerScore *float32       `json:"ranker_score,omitempty"`
	RankerRank  int            `json:"ranker_rank,omitempty"`
	Effects     []rules.Effect `json:"effects,omitempty"`
	// Contributions are each feature's share of RankerScore (in
	// FeatureNames order): with the base value they sum to it.
	Contributions *Contributions `json:"contributions,omitempty"`
}

// Contributions split a ranker score among the features: Base plus the
// sum of Values is the score. For a tree ensemble they are the exact
// Shapley values of the trees (TreeSHAP, path-dependent: the training
// rows that reached each node weigh its branches); for a linear model
// weight times value, relative to all-zero features.
type Contributions struct {
	Method string    `json:"method,omitempty"` // treeshap, linear or linear+treeshap (trees boosted from a linear model)
	Base   float32   `json:"base"`
	Values []float32 `json:"values,omitempty"`
	// Unavailable says why a model explains nothing.
	Unavailable string `json:"unavailable,omitempty"`
}

// Dropped is a candidate a business rule kept out of the response, with
// the 1-based position its score would have given it.
type Dropped struct {
	ID       string `json:"id"`
	Rule     string `json:"rule"`
	Action   string `json:"action"`
	Reason   string `json:"reason"`
	Position int    `json:"position"`
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
	// Names are the recommendation sources that listed the hit (content
	// is Dense's list); Cooc, ALS and Popular its place in theirs.
	Names   []string   `json:"names,omitempty"`
	Cooc    *SourceHit `json:"cooc,omitempty"`
	ALS     *SourceHit `json:"als,omitempty"`
	Popular *SourceHit `json:"popular,omitempty"`
	// CoocScore and ALSScore are the hit's scores whether or not the
	// source listed it, as shares of the best among the request's
	// candidates (0 when the source did not run).
	CoocScore float32 `json:"cooc_score,omitempty"`
	ALSScore  float32 `json:"als_score,omitempty"`
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
	if !text && !c.inDense && c.srcs == 0 {
		s.DenseScore = 0
	}
	if c.srcs != 0 {
		s.CoocScore, s.ALSScore = c.ret.CoocScore, c.ret.ALSScore
		for i, name := range RecommendSources {
			if c.srcs&(1<<i) != 0 {
				s.Names = append(s.Names, name)
			}
		}
		if c.srcs&srcCooc != 0 {
			s.Cooc = &SourceHit{Rank: c.ret.CoocRank + 1, Score: c.ret.CoocScore}
		}
		if c.srcs&srcALS != 0 {
			s.ALS = &SourceHit{Rank: c.ret.ALSRank + 1, Score: c.ret.ALSScore}
		}
		if c.srcs&srcPopular != 0 {
			s.Popular = &SourceHit{Rank: c.ret.PopularRank + 1}
		}
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
	// Dropped are the candidates business rules kept out (only with
	// Explain).
	Dropped  []Dropped `json:"dropped,omitempty"`
	Degraded []string  `json:"degraded,omitempty"` // stages that fell back, e.g. "features", "ranking"
}
