// Package judged measures and trains search on judged queries through the
// engine serve runs: it turns a BEIR corpus into a catalog and a real
// bundle, opens that bundle in an engine.Engine, answers every query with
// engine.Search (HNSW, lexical index, fusion, ranker), and turns judged
// queries into ranker training rows with the exact feature vectors the
// server computes. Nothing here reimplements a retrieval stage, so a
// figure it reports describes the product.
package judged
