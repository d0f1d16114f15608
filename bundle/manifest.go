package bundle

import (
	"encoding/json"
	"fmt"
	"time"
)

// FormatVersion is bumped when the layout changes incompatibly; loading
// refuses a bundle written by a newer format.
const FormatVersion = 1

// ManifestName is the manifest's file name inside a bundle directory.
const ManifestName = "manifest.json"

// File is one file of a bundle with the size and checksum it was published with.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Model describes one model file of the bundle.
type Model struct {
	File    string `json:"file"`
	Kind    string `json:"kind"`    // e.g. "hashed-ngram-bag", "linear"
	Version string `json:"version"` // checksum-derived unless a trainer names it
}

// Manifest describes one generation of everything the service serves.
type Manifest struct {
	Format        int       `json:"format"`
	Version       string    `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	CatalogSHA256 string    `json:"catalog_sha256"`
	CatalogSource string    `json:"catalog_source"`
	Items         int       `json:"items"`
	Dim           int       `json:"dim"`
	IndexBackend  string    `json:"index_backend"`
	EmbedModel    Model     `json:"embed_model"`
	Ranker        Model     `json:"ranker"`
	// Lexical is the BM25F index over the item text; bundles built before
	// it have none and serve text queries from the vectors alone.
	Lexical *Model `json:"lexical,omitempty"`
	// Rules records the filter and business rules the bundle was built
	// and validated with (rules.file, or the configuration's section), so
	// a bundle says which rules its results were meant to be served with.
	// Bundles built before it have none.
	Rules *Model `json:"rules,omitempty"`
	// FeatureNames is the ranker's input order; ItemFeatureNames is the
	// column order of the item feature rows (features file and store).
	// FeatureDefaults[i] is served for FeatureNames[i] when a value is missing.
	FeatureNames     []string           `json:"feature_names"`
	FeatureDefaults  []float32          `json:"feature_defaults"`
	ItemFeatureNames []string           `json:"item_feature_names"`
	Metrics          map[string]float64 `json:"metrics,omitempty"`
	// ItemsOffset is the items-topic offset after the last change the
	// catalog folded in: a server replays the topic from here. Nil means
	// the build read no items topic, so a server replays it from the start.
	ItemsOffset *int64 `json:"items_offset,omitempty"`
	// Sources are the recommendation sources trained from the event log;
	// nil when the build read no events (content and popularity only).
	Sources *Sources `json:"sources,omitempty"`
	Files   []File   `json:"files"`
}

// File returns the entry for name, or false.
func (m *Manifest) File(name string) (File, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

func decodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	switch {
	case m.Format < 1 || m.Format > FormatVersion:
		return nil, fmt.Errorf("manifest format %d: this binary reads formats 1..%d", m.Format, FormatVersion)
	case m.Version == "":
		return nil, fmt.Errorf("manifest: version is empty")
	case m.Items <= 0:
		return nil, fmt.Errorf("manifest: items must be > 0, got %d", m.Items)
	case m.Dim <= 0:
		return nil, fmt.Errorf("manifest: dim must be > 0, got %d", m.Dim)
	case len(m.FeatureDefaults) != len(m.FeatureNames):
		return nil, fmt.Errorf("manifest: %d feature defaults for %d features", len(m.FeatureDefaults), len(m.FeatureNames))
	case len(m.Files) == 0:
		return nil, fmt.Errorf("manifest: lists no files")
	}
	return &m, nil
}

// Sources are a bundle's recommendation candidate sources and what they
// were trained from. A source the build could not train (too few
// interactions) is nil.
type Sources struct {
	Neighbours   *Model `json:"neighbours,omitempty"`
	Factors      *Model `json:"factors,omitempty"`
	FactorsIndex *Model `json:"factors_index,omitempty"`
	Popular      *Model `json:"popular,omitempty"`
	// Interactions, Users and UsedItems count what training read: the
	// user actions on catalog items, the users and items among them.
	Interactions int `json:"interactions"`
	Users        int `json:"users"`
	UsedItems    int `json:"used_items"`
	// Until is the newest interaction's time.
	Until time.Time `json:"until"`
}
