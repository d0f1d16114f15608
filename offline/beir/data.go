package beir

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/recsys-dev/recsys/internal/strictjson"
)

// Doc is one corpus document.
type Doc struct {
	ID    string
	Title string
	Text  string
}

// Body returns the text a retriever embeds: title and text, as BEIR's
// dense retrievers do.
func (d Doc) Body() string {
	switch {
	case d.Title == "":
		return d.Text
	case d.Text == "":
		return d.Title
	}
	return d.Title + " " + d.Text
}

// Query is one query.
type Query struct {
	ID   string
	Text string
}

// Qrels maps a query id to its judged documents and their grades.
type Qrels map[string]map[string]int

// Dataset is a BEIR folder loaded in memory.
type Dataset struct {
	Corpus  []Doc
	Queries []Query
	Qrels   Qrels
	// QrelsPath is the judgement file that was read.
	QrelsPath string
}

// maxLine bounds one JSONL line; BEIR's longest abstracts are far shorter.
const maxLine = 16 << 20

// Load reads dir/corpus.jsonl, dir/queries.jsonl and the qrels file:
// qrelsPath when set, otherwise dir/qrels/test.tsv, otherwise the folder's
// only qrels file. Queries keep only those with a judgement, in file order.
func Load(ctx context.Context, dir, qrelsPath string) (*Dataset, error) {
	if qrelsPath == "" {
		var err error
		if qrelsPath, err = defaultQrels(dir); err != nil {
			return nil, fmt.Errorf("load beir %s: %w", dir, err)
		}
	}
	ds := &Dataset{QrelsPath: qrelsPath}
	steps := []struct {
		path string
		read func(io.Reader) error
	}{
		{filepath.Join(dir, "corpus.jsonl"), func(r io.Reader) (err error) { ds.Corpus, err = ReadCorpus(r); return err }},
		{filepath.Join(dir, "queries.jsonl"), func(r io.Reader) error {
			qs, err := ReadQueries(r)
			ds.Queries = qs
			return err
		}},
		{qrelsPath, func(r io.Reader) (err error) { ds.Qrels, err = ReadQrels(r); return err }},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := readFile(s.path, s.read); err != nil {
			return nil, fmt.Errorf("load beir: %w", err)
		}
	}
	known := make(map[string]bool, len(ds.Corpus))
	for _, d := range ds.Corpus {
		known[d.ID] = true
	}
	judged := ds.Queries[:0]
	asked := make(map[string]bool, len(ds.Queries))
	for _, q := range ds.Queries {
		asked[q.ID] = true
		if _, ok := ds.Qrels[q.ID]; ok {
			judged = append(judged, q)
		}
	}
	ds.Queries = judged
	for qid := range ds.Qrels {
		if !asked[qid] {
			return nil, fmt.Errorf("load beir %s: %s judges query %s, which is not in queries.jsonl", dir, qrelsPath, qid)
		}
	}
	if len(ds.Queries) == 0 {
		return nil, fmt.Errorf("load beir %s: no query in queries.jsonl has a judgement in %s", dir, qrelsPath)
	}
	// A judged document missing from the corpus can never be retrieved and
	// would silently cap recall: that is a broken dataset, so say so.
	for qid, rels := range ds.Qrels {
		for did := range rels {
			if !known[did] {
				return nil, fmt.Errorf("load beir %s: %s: query %s judges document %s, which is not in the corpus", dir, qrelsPath, qid, did)
			}
		}
	}
	return ds, nil
}

func defaultQrels(dir string) (string, error) {
	test := filepath.Join(dir, "qrels", "test.tsv")
	if _, err := os.Stat(test); err == nil {
		return test, nil
	}
	found, err := filepath.Glob(filepath.Join(dir, "qrels", "*.tsv"))
	if err != nil {
		return "", err
	}
	if len(found) != 1 {
		return "", fmt.Errorf("no qrels/test.tsv and %d other qrels files: name one with --qrels", len(found))
	}
	return found[0], nil
}

func readFile(path string, read func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := read(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// eachLine calls fn with every non-blank line and its 1-based number.
func eachLine(r io.Reader, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	return nil
}

// jsonLine is a corpus or query line. Metadata is free-form in BEIR and
// unused here, so it is accepted as any JSON value.
type jsonLine struct {
	ID       *string         `json:"_id"`
	Title    string          `json:"title"`
	Text     *string         `json:"text"`
	Metadata json.RawMessage `json:"metadata"`
}

func decodeLine(n int, line []byte, seen map[string]bool) (jsonLine, error) {
	var v jsonLine
	if err := strictjson.Decode(line, &v, ""); err != nil {
		return v, fmt.Errorf("line %d: %w", n, err)
	}
	switch {
	case v.ID == nil || *v.ID == "":
		return v, fmt.Errorf("line %d: _id: must be set", n)
	case v.Text == nil:
		return v, fmt.Errorf("line %d: text: must be set", n)
	case seen[*v.ID]:
		return v, fmt.Errorf("line %d: _id: %q appears twice", n, *v.ID)
	}
	seen[*v.ID] = true
	return v, nil
}

// ReadCorpus reads corpus.jsonl: {"_id", "title", "text", "metadata"}.
func ReadCorpus(r io.Reader) ([]Doc, error) {
	var docs []Doc
	seen := map[string]bool{}
	err := eachLine(r, func(n int, line []byte) error {
		v, err := decodeLine(n, line, seen)
		if err != nil {
			return err
		}
		docs = append(docs, Doc{ID: *v.ID, Title: v.Title, Text: *v.Text})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read corpus: %w", err)
	}
	if len(docs) == 0 {
		return nil, errors.New("read corpus: no documents")
	}
	return docs, nil
}

// ReadQueries reads queries.jsonl: {"_id", "text", "metadata"}.
func ReadQueries(r io.Reader) ([]Query, error) {
	var qs []Query
	seen := map[string]bool{}
	err := eachLine(r, func(n int, line []byte) error {
		v, err := decodeLine(n, line, seen)
		if err != nil {
			return err
		}
		qs = append(qs, Query{ID: *v.ID, Text: *v.Text})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read queries: %w", err)
	}
	return qs, nil
}

// ReadQrels reads a qrels TSV: query id, document id, integer grade, with
// an optional "query-id" header line. A repeated pair is an error: which
// grade to trust would be a guess.
func ReadQrels(r io.Reader) (Qrels, error) {
	q := Qrels{}
	err := eachLine(r, func(n int, line []byte) error {
		f := strings.Split(strings.TrimRight(string(line), "\r"), "\t")
		if n == 1 && len(f) > 0 && f[0] == "query-id" {
			return nil
		}
		if len(f) != 3 {
			return fmt.Errorf("line %d: want 3 tab-separated fields (query-id, corpus-id, score), got %d", n, len(f))
		}
		if f[0] == "" || f[1] == "" {
			return fmt.Errorf("line %d: empty query or document id", n)
		}
		grade, err := strconv.Atoi(strings.TrimSpace(f[2]))
		if err != nil {
			return fmt.Errorf("line %d: score %q: want an integer", n, f[2])
		}
		if q[f[0]] == nil {
			q[f[0]] = map[string]int{}
		}
		if _, dup := q[f[0]][f[1]]; dup {
			return fmt.Errorf("line %d: query %s judges document %s twice", n, f[0], f[1])
		}
		q[f[0]][f[1]] = grade
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read qrels: %w", err)
	}
	if len(q) == 0 {
		return nil, errors.New("read qrels: no judgements")
	}
	return q, nil
}

// QueryIDs returns the qrels' query ids in sorted order.
func (q Qrels) QueryIDs() []string {
	ids := make([]string, 0, len(q))
	for id := range q {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Fold splits the judged queries into k folds as every cross-validation
// here does (sorted by id, shuffled with seed, query i in fold i mod k) and
// returns fold i (1-based) as test and the other folds as train. Every
// command that takes --fold uses this split, so a model trained on the
// other folds never saw a test query.
func (ds *Dataset) Fold(i, k int, seed uint64) (train, test []Query, err error) {
	if k < 2 || k > len(ds.Queries) {
		return nil, nil, fmt.Errorf("folds: must be in 2..%d (the judged queries), got %d", len(ds.Queries), k)
	}
	if i < 1 || i > k {
		return nil, nil, fmt.Errorf("fold: must be in 1..%d, got %d", k, i)
	}
	queries := slices.Clone(ds.Queries)
	slices.SortFunc(queries, func(a, b Query) int { return strings.Compare(a.ID, b.ID) })
	rand.New(rand.NewPCG(seed, 0x5eed)).Shuffle(len(queries), func(a, b int) { queries[a], queries[b] = queries[b], queries[a] })
	for n, q := range queries {
		if n%k == i-1 {
			test = append(test, q)
		} else {
			train = append(train, q)
		}
	}
	return train, test, nil
}

// Only returns a copy of ds restricted to queries (and their judgements).
func (ds *Dataset) Only(queries []Query) *Dataset {
	out := &Dataset{Corpus: ds.Corpus, Queries: queries, Qrels: Qrels{}, QrelsPath: ds.QrelsPath}
	for _, q := range queries {
		out.Qrels[q.ID] = ds.Qrels[q.ID]
	}
	return out
}
