// Package catalog owns the item schema, the catalog readers (JSONL and CSV)
// and the validation gate that refuses a whole catalog, naming every
// offending line, rather than silently dropping rows.
package catalog
