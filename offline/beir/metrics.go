package beir

import (
	"fmt"
	"io"
	"math"
	"slices"
)

// NDCG returns nDCG@k of a ranking: DCG = sum of grade/log2(rank+1) over the
// top k, divided by the DCG of the ideal ordering of every judged document.
// A query without a positive grade scores 0.
func NDCG(ranked []string, grades map[string]int, k int) float64 {
	var dcg float64
	for i, id := range ranked[:min(k, len(ranked))] {
		if g := grades[id]; g > 0 {
			dcg += float64(g) / math.Log2(float64(i+2))
		}
	}
	ideal := make([]int, 0, len(grades))
	for _, g := range grades {
		if g > 0 {
			ideal = append(ideal, g)
		}
	}
	slices.SortFunc(ideal, func(a, b int) int { return b - a })
	var idcg float64
	for i, g := range ideal[:min(k, len(ideal))] {
		idcg += float64(g) / math.Log2(float64(i+2))
	}
	if idcg == 0 {
		return 0
	}
	return dcg / idcg
}

// Recall returns the share of relevant (grade > 0) documents in the top k.
func Recall(ranked []string, grades map[string]int, k int) float64 {
	relevant := 0
	for _, g := range grades {
		if g > 0 {
			relevant++
		}
	}
	if relevant == 0 {
		return 0
	}
	found := 0
	for _, id := range ranked[:min(k, len(ranked))] {
		if grades[id] > 0 {
			found++
		}
	}
	return float64(found) / float64(relevant)
}

// MRR returns the reciprocal rank of the first relevant document in the
// top k, or 0 when there is none.
func MRR(ranked []string, grades map[string]int, k int) float64 {
	for i, id := range ranked[:min(k, len(ranked))] {
		if grades[id] > 0 {
			return 1 / float64(i+1)
		}
	}
	return 0
}

// Report holds a run's metrics averaged over its queries.
type Report struct {
	Queries   int     `json:"queries"`
	NDCG10    float64 `json:"ndcg@10"`
	Recall10  float64 `json:"recall@10"`
	Recall100 float64 `json:"recall@100"`
	MRR10     float64 `json:"mrr@10"`
}

// Evaluate averages the metrics of run (query id -> ranked document ids)
// over the queries in qrels that have a relevant document. A judged query
// missing from run counts as an empty ranking, not as absent: leaving it
// out would flatter a retriever that fails on it.
func Evaluate(run map[string][]string, qrels Qrels) Report {
	var r Report
	for qid, grades := range qrels {
		if !hasRelevant(grades) {
			continue
		}
		ranked := run[qid]
		r.Queries++
		r.NDCG10 += NDCG(ranked, grades, 10)
		r.Recall10 += Recall(ranked, grades, 10)
		r.Recall100 += Recall(ranked, grades, 100)
		r.MRR10 += MRR(ranked, grades, 10)
	}
	if r.Queries > 0 {
		n := float64(r.Queries)
		r.NDCG10, r.Recall10, r.Recall100, r.MRR10 = r.NDCG10/n, r.Recall10/n, r.Recall100/n, r.MRR10/n
	}
	return r
}

func hasRelevant(grades map[string]int) bool {
	for _, g := range grades {
		if g > 0 {
			return true
		}
	}
	return false
}

// Print writes the report as aligned lines.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "queries     %d\n", r.Queries)
	fmt.Fprintf(w, "nDCG@10     %.4f\n", r.NDCG10)
	fmt.Fprintf(w, "Recall@10   %.4f\n", r.Recall10)
	fmt.Fprintf(w, "Recall@100  %.4f\n", r.Recall100)
	fmt.Fprintf(w, "MRR@10      %.4f\n", r.MRR10)
}
