// Package lexbleve indexes documents with github.com/blevesearch/bleve/v2
// (scorch segments on disk, its "en" analyzer, its BM25 scoring) so that
// `recsys bench lexical` can compare the project's own lexical index with
// the library a user would reach for first, on the same documents in the
// same run. Serving never uses it.
package lexbleve
