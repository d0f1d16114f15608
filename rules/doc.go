// Package rules owns the filter rules and business rules: expressions
// (github.com/expr-lang/expr) compiled and type-checked once when a bundle or
// config loads, then evaluated per item without recompiling.
//
// Filter rules decide which items retrieval may return (an item is kept only
// if every filter is true); the engine pushes Set.Keep into the ANN search so
// a selective filter still yields k results. Business rules run after
// scoring: boosts add to (or, negative, subtract from) the score, caps limit
// how many items of one brand or category lead the list. Each candidate
// records the rules that fired on it so an explain trace can show why it
// moved.
//
// Expressions see one environment (see Env): item.id, item.title,
// item.brand, item.category, item.tags, item.price, item.age_rating,
// item.available, item.age_days, item.popularity, user.id, user.age (0 =
// unknown) and query (empty for recommend). A misspelt name or a non-bool
// filter is a compile error naming the rule and the line and column.
package rules
