package judged

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/offline/beir"
	"github.com/recsys-dev/recsys/offline/ranktrain"
)

// MaxGrade bounds a judgment's grade; LambdaMART's gain is 2^grade - 1.
const MaxGrade = 10

// Judged is one query with its graded items.
type Judged struct {
	ID     string
	Text   string
	Grades map[string]int // item id -> grade (> 0 relevant)
}

// FromQrels pairs BEIR qrels with their query texts, in query order.
func FromQrels(queries []beir.Query, qrels beir.Qrels) []Judged {
	out := make([]Judged, 0, len(queries))
	for _, q := range queries {
		if g, ok := qrels[q.ID]; ok {
			out = append(out, Judged{ID: q.ID, Text: q.Text, Grades: g})
		}
	}
	return out
}

// ReadTSV reads judgments as "query<TAB>item id<TAB>grade" lines (a first
// line "query<TAB>item<TAB>grade" is a header), the form a search team
// writes by hand. Queries keep the order they first appear in; the same
// (query, item) twice is an error, as in qrels.
func ReadTSV(r io.Reader) ([]Judged, error) {
	var out []Judged
	byText := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if n == 1 && len(f) == 3 && f[0] == "query" && f[1] == "item" {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("judgments line %d: want 3 tab-separated fields (query, item, grade), got %d", n, len(f))
		}
		q, item := strings.TrimSpace(f[0]), strings.TrimSpace(f[1])
		if q == "" || item == "" {
			return nil, fmt.Errorf("judgments line %d: empty query or item", n)
		}
		g, err := strconv.Atoi(strings.TrimSpace(f[2]))
		if err != nil || g < 0 || g > MaxGrade {
			return nil, fmt.Errorf("judgments line %d: grade %q: want an integer in 0..%d", n, f[2], MaxGrade)
		}
		i, ok := byText[q]
		if !ok {
			i = len(out)
			byText[q] = i
			out = append(out, Judged{ID: fmt.Sprintf("q%d", i+1), Text: q, Grades: map[string]int{}})
		}
		if _, dup := out[i].Grades[item]; dup {
			return nil, fmt.Errorf("judgments line %d: query %q judges item %s twice", n, q, item)
		}
		out[i].Grades[item] = g
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read judgments: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("read judgments: no judgments")
	}
	return out, nil
}

// ReadTSVFile is ReadTSV on a file.
func ReadTSVFile(path string) ([]Judged, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read judgments: %w", err)
	}
	defer f.Close()
	js, err := ReadTSV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return js, nil
}

// Stats say how much of the judgments the candidates reach.
type Stats struct {
	Queries int `json:"queries"`
	// Informative queries have a relevant item among their candidates:
	// the only ones a ranker can learn from.
	Informative int `json:"informative"`
	// Relevant is the number of relevant judgments; Retrieved how many
	// of them were among the candidates (the ranker's ceiling).
	Relevant  int `json:"relevant"`
	Retrieved int `json:"retrieved"`
	// Unknown judgments name items the bundle does not hold.
	Unknown int `json:"unknown"`
	// Features are the names of the feature vectors, the bundle's.
	Features []string `json:"-"`
}

// Queries answers each judged query through e.Search with explain on and
// k = depth (all of ranking's candidates), and returns it as a
// ranktrain.Query: the candidates in served order with the feature vectors
// the ranker saw, labelled with their grades (0 when unjudged). st
// accumulates the counts over calls.
func Queries(ctx context.Context, e *engine.Engine, judged []Judged, depth int, mode string, st *Stats) ([]*ranktrain.Query, error) {
	out := make([]*ranktrain.Query, 0, len(judged))
	for _, j := range judged {
		res, err := e.Search(ctx, engine.SearchRequest{RequestID: "judged-" + j.ID, Query: j.Text, K: depth, Retrieval: mode, Explain: true})
		if err != nil {
			return nil, fmt.Errorf("judged query %s: %w", j.ID, err)
		}
		st.Queries++
		if st.Features == nil {
			st.Features = res.FeatureNames
		} else if !slices.Equal(st.Features, res.FeatureNames) {
			return nil, fmt.Errorf("judged query %s: answered with features %v, earlier ones with %v", j.ID, res.FeatureNames, st.Features)
		}
		q := &ranktrain.Query{RequestID: "judged-" + j.ID, Bundle: res.Bundle}
		found := map[string]bool{}
		informative := false
		for pos, h := range res.Items {
			g := j.Grades[h.ID]
			q.Items = append(q.Items, h.ID)
			q.Positions = append(q.Positions, pos)
			q.Labels = append(q.Labels, float32(g))
			q.Features = append(q.Features, slices.Clone(h.Features))
			found[h.ID] = true
			informative = informative || g > 0
		}
		for id, g := range j.Grades {
			if g > 0 {
				st.Relevant++
				if found[id] {
					st.Retrieved++
				}
			}
			if !e.Has(id) {
				st.Unknown++
			}
		}
		if informative {
			st.Informative++
		}
		out = append(out, q)
	}
	return out, nil
}

// Shuffle orders qs by a shuffle seeded by seed and gives them times one
// second apart in that order, so ranktrain's newest-fraction test slice is
// a random sample of the judged queries.
func Shuffle(qs []*ranktrain.Query, seed uint64) {
	rand.New(rand.NewPCG(seed, 0x6a75646765)).Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
	base := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, q := range qs {
		q.Time = base.Add(time.Duration(i) * time.Second)
	}
}
