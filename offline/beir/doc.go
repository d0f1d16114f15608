// Package beir evaluates text retrieval on BEIR-layout datasets: it reads
// corpus.jsonl, queries.jsonl and a qrels TSV, retrieves with any text
// encoder by exact cosine similarity, and scores runs with the metrics
// BEIR reports (nDCG@10, Recall@10/100, MRR@10).
//
// The metrics follow pytrec_eval, which BEIR uses: nDCG with linear gain
// (the qrels grade itself) and log2 discount, the ideal ranking taken over
// every judged document of the query; a document counts as relevant when
// its grade is above zero; queries without a relevant document are left
// out of the averages.
package beir
