package beir

import (
	"container/heap"
	"context"
	"fmt"
	"runtime"
	"sync"
)

// Encoder embeds texts into unit vectors; embed.Encoder and embed.BERT
// satisfy it.
type Encoder interface {
	EncodeAll(ctx context.Context, texts []string, progress func(done, total int)) ([][]float32, error)
}

// Retrieve embeds the corpus and the queries with enc and returns each
// query's k most similar documents, best first. progress, when not nil,
// is told which stage ("corpus", "queries") has done how much.
func Retrieve(ctx context.Context, enc Encoder, docs []Doc, queries []Query, k int,
	progress func(stage string, done, total int)) (map[string][]string, error) {
	stage := func(name string) func(done, total int) {
		if progress == nil {
			return nil
		}
		return func(done, total int) { progress(name, done, total) }
	}
	texts := make([]string, len(docs))
	ids := make([]string, len(docs))
	for i, d := range docs {
		texts[i], ids[i] = d.Body(), d.ID
	}
	docVecs, err := enc.EncodeAll(ctx, texts, stage("corpus"))
	if err != nil {
		return nil, fmt.Errorf("retrieve: embed corpus: %w", err)
	}
	qTexts := make([]string, len(queries))
	for i, q := range queries {
		qTexts[i] = q.Text
	}
	qVecs, err := enc.EncodeAll(ctx, qTexts, stage("queries"))
	if err != nil {
		return nil, fmt.Errorf("retrieve: embed queries: %w", err)
	}
	ranked, err := Search(ctx, docVecs, qVecs, k)
	if err != nil {
		return nil, fmt.Errorf("retrieve: %w", err)
	}
	run := make(map[string][]string, len(queries))
	for i, q := range queries {
		r := make([]string, len(ranked[i]))
		for j, d := range ranked[i] {
			r[j] = ids[d]
		}
		run[q.ID] = r
	}
	return run, nil
}

// Search returns, for each query vector, the indexes of the k document
// vectors with the highest dot product (cosine for unit vectors), best
// first; ties go to the lower index so runs are reproducible. Queries are
// spread over all cores.
func Search(ctx context.Context, docs, queries [][]float32, k int) ([][]int, error) {
	out := make([][]int, len(queries))
	k = min(k, len(docs))
	if k <= 0 {
		return out, nil
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Go(func() {
			h := make(minHeap, 0, k)
			for qi := range next {
				q := queries[qi]
				h = h[:0]
				for di, d := range docs {
					s := dot(q, d)
					if len(h) < k {
						heap.Push(&h, hit{di, s})
					} else if better(hit{di, s}, h[0]) {
						h[0] = hit{di, s}
						heap.Fix(&h, 0)
					}
				}
				res := make([]int, len(h))
				for i := len(h) - 1; i >= 0; i-- {
					res[i] = heap.Pop(&h).(hit).doc
				}
				out[qi] = res
			}
		})
	}
	var err error
feed:
	for qi := range queries {
		select {
		case next <- qi:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return out, nil
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range min(len(a), len(b)) {
		s += a[i] * b[i]
	}
	return s
}

type hit struct {
	doc   int
	score float32
}

// better orders hits by score, then by lower document index.
func better(a, b hit) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.doc < b.doc
}

// minHeap keeps the worst of the current top k at its root.
type minHeap []hit

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(hit)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
