package judged

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/recsys-dev/recsys/bundle"
	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/offline/beir"
)

// corpusDate is the creation date of every converted document: fixed, so
// two builds of one corpus are identical, and old, so no freshness rule or
// feature treats the corpus as new.
var corpusDate = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// maxDerivedTitle bounds a title taken from the text of an untitled
// document.
const maxDerivedTitle = 80

// Items maps a BEIR corpus onto catalog items: the document title as the
// title (the first words of the text when it has none, since a catalog
// item needs one), the text as the description. Everything else is
// neutral: available, no brand, category, price or age rating.
func Items(docs []beir.Doc) []catalog.Item {
	items := make([]catalog.Item, len(docs))
	for i, d := range docs {
		title := strings.TrimSpace(d.Title)
		if title == "" {
			title = derivedTitle(d.Text)
		}
		if title == "" {
			title = d.ID
		}
		items[i] = catalog.Item{ID: d.ID, Title: title, Description: d.Text, Available: true, CreatedAt: corpusDate}
	}
	return items
}

func derivedTitle(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if len(text) <= maxDerivedTitle {
		return text
	}
	cut := maxDerivedTitle
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	if sp := strings.LastIndexByte(text[:cut], ' '); sp > 0 {
		cut = sp
	}
	return text[:cut]
}

// BuildCorpus writes docs as a JSONL catalog under root and runs the
// product's build on it, publishing a bundle under root/bundles. o's
// Catalog and BundlesDir are set here; the rest (embedding model, index,
// lexical, rank and ranker settings) is the caller's configuration.
func BuildCorpus(ctx context.Context, o offline.BuildOptions, docs []beir.Doc, root string) (*bundle.Manifest, string, error) {
	o.Catalog = filepath.Join(root, "corpus-catalog.jsonl")
	o.BundlesDir = filepath.Join(root, "bundles")
	if o.Keep == 0 {
		o.Keep = 1
	}
	items := Items(docs)
	if err := atomicfile.Write(o.Catalog, func(w io.Writer) error { return catalog.WriteJSONL(w, items) }); err != nil {
		return nil, "", fmt.Errorf("build corpus bundle: %w", err)
	}
	m, err := offline.Build(ctx, o)
	if err != nil {
		return nil, "", fmt.Errorf("build corpus bundle: %w", err)
	}
	return m, filepath.Join(o.BundlesDir, m.Version), nil
}

// OpenEngine loads the bundle in dir into a new engine with cfg and the
// serving knobs load, as serve would, but with the bundle's own item
// features, no real-time store, no impressions and no rules: a corpus has
// no availability, audience or brands for them to act on.
func OpenEngine(ctx context.Context, cfg engine.Config, load engine.LoadOptions, dir string) (*engine.Engine, error) {
	e, err := engine.New(cfg, engine.Deps{Load: load})
	if err != nil {
		return nil, err
	}
	if err := e.Load(ctx, dir); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Answer is the engine's ranking for one query.
type Answer struct {
	QueryID string
	IDs     []string
	Scores  []float32
	Latency time.Duration
}

// Search answers every query through e.Search with k results in the
// given retrieval mode ("" for the engine's default), one at a time so the
// latencies are single-request figures.
func Search(ctx context.Context, e *engine.Engine, queries []beir.Query, k int, mode string) ([]Answer, error) {
	out := make([]Answer, 0, len(queries))
	for _, q := range queries {
		start := time.Now()
		res, err := e.Search(ctx, engine.SearchRequest{RequestID: "eval-" + q.ID, Query: q.Text, K: k, Retrieval: mode})
		lat := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", q.ID, err)
		}
		a := Answer{QueryID: q.ID, Latency: lat, IDs: make([]string, len(res.Items)), Scores: make([]float32, len(res.Items))}
		for i, h := range res.Items {
			a.IDs[i], a.Scores[i] = h.ID, h.Score
		}
		out = append(out, a)
	}
	return out, nil
}

// Run is the answers as a run for beir.Evaluate.
func Run(answers []Answer) map[string][]string {
	run := make(map[string][]string, len(answers))
	for _, a := range answers {
		run[a.QueryID] = a.IDs
	}
	return run
}

// WriteTREC writes the answers as a TREC run file: "qid Q0 docid rank
// score tag" per line, ranks from 1.
func WriteTREC(w io.Writer, answers []Answer, tag string) error {
	for _, a := range answers {
		for i, id := range a.IDs {
			if _, err := fmt.Fprintf(w, "%s Q0 %s %d %.6f %s\n", a.QueryID, id, i+1, a.Scores[i], tag); err != nil {
				return err
			}
		}
	}
	return nil
}
