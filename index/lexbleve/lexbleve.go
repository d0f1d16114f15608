package lexbleve

import (
	"context"
	"fmt"
	"io/fs"

	"path/filepath"
	"strconv"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	bleveindex "github.com/blevesearch/bleve_index_api"

	"github.com/recsys-dev/recsys/index"
)

// bodyField holds every field's text joined when the fields are indexed as one.
const bodyField = "body"

// Index is a bleve index over documents numbered 0..n-1.
type Index struct {
	idx     bleve.Index
	dir     string
	fields  []string
	weights []float64
}

// Build indexes n documents into a new bleve index in dir. With oneField
// the fields are joined into one field ("title and text as one field", the
// BM25 baseline's setup); otherwise each field with a positive weight in
// cfg is its own field, queried with the weight as a boost. cfg's k1 and b
// are set in bleve's package variables (bleve has no per-index setting), so
// two indexes in one process share them.
func Build(ctx context.Context, dir string, cfg index.LexicalConfig, n int, text func(d, f int) string, oneField bool) (*Index, error) {
	search.BM25_k1, search.BM25_b = cfg.K1, cfg.B
	m := bleve.NewIndexMapping()
	m.ScoringModel = bleveindex.BM25Scoring
	m.DefaultAnalyzer = en.AnalyzerName
	doc := bleve.NewDocumentStaticMapping()
	x := &Index{dir: dir}
	w := cfg.Params().Weights
	if oneField {
		x.fields, x.weights = []string{bodyField}, []float64{1}
	} else {
		for f, name := range index.FieldNames {
			if w[f] > 0 {
				x.fields, x.weights = append(x.fields, name), append(x.weights, w[f])
			}
		}
	}
	for _, name := range x.fields {
		fm := bleve.NewTextFieldMapping()
		fm.Analyzer, fm.Store, fm.IncludeTermVectors, fm.IncludeInAll = en.AnalyzerName, false, false, false
		doc.AddFieldMappingsAt(name, fm)
	}
	m.DefaultMapping = doc
	idx, err := bleve.New(dir, m)
	if err != nil {
		return nil, fmt.Errorf("bleve: new index: %w", err)
	}
	x.idx = idx
	batch := idx.NewBatch()
	for d := range n {
		body := map[string]any{}
		if oneField {
			s := ""
			for f := range index.NumFields {
				if t := text(d, f); t != "" && w[f] > 0 {
					if s != "" {
						s += " "
					}
					s += t
				}
			}
			body[bodyField] = s
		} else {
			for f, name := range index.FieldNames {
				if w[f] > 0 {
					body[name] = text(d, f)
				}
			}
		}
		if err := batch.Index(strconv.Itoa(d), body); err != nil {
			idx.Close()
			return nil, fmt.Errorf("bleve: index document %d: %w", d, err)
		}
		if batch.Size() == 1000 || d == n-1 {
			if err := idx.Batch(batch); err != nil {
				idx.Close()
				return nil, fmt.Errorf("bleve: batch: %w", err)
			}
			batch.Reset()
			if err := ctx.Err(); err != nil {
				idx.Close()
				return nil, err
			}
		}
	}
	return x, nil
}

// Search returns the k best documents for q: a disjunction over the
// fields of match queries (each an OR of the analysed terms), boosted by
// the field weights.
func (x *Index) Search(ctx context.Context, q string, k int) ([]int32, error) {
	var qs []query.Query
	for i, f := range x.fields {
		mq := bleve.NewMatchQuery(q)
		mq.SetField(f)
		mq.SetBoost(x.weights[i])
		qs = append(qs, mq)
	}
	var bq query.Query = qs[0]
	if len(qs) > 1 {
		bq = bleve.NewDisjunctionQuery(qs...)
	}
	req := bleve.NewSearchRequestOptions(bq, k, 0, false)
	res, err := x.idx.SearchInContext(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("bleve: search: %w", err)
	}
	out := make([]int32, len(res.Hits))
	for i, h := range res.Hits {
		d, err := strconv.Atoi(h.ID)
		if err != nil {
			return nil, fmt.Errorf("bleve: hit id %q: %w", h.ID, err)
		}
		out[i] = int32(d)
	}
	return out, nil
}

// Close closes the index.
func (x *Index) Close() error { return x.idx.Close() }

// DiskBytes is the size of the index directory.
func (x *Index) DiskBytes() (int64, error) {
	var total int64
	err := filepath.WalkDir(x.dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	return total, err
}
