// Package ranktrain is the ranker's training job and its validation gate.
// It replays impressions and actions from the events topic, joins each
// impression with the actions on its items within an attribution window,
// labels the shown items (purchase 2, click 1, skip 0) and trains a
// LambdaMART tree ranker on the feature vectors that were logged at serving
// time, so training sees exactly what serving saw (no training/serving skew).
//
// The gate is the MLOps level-1 pattern: train on the older queries,
// evaluate on the newest slice, and promote the new model (write it where
// build.ranker points, so the next bundle carries it) only if its NDCG@10
// on that slice is not worse than the current model's. Every run, promoted,
// rejected or failed, leaves a Record in the run history.
//
// Clicks are position-biased, so rows weigh their inverse examination
// propensity. The run estimates it from the impressions the server showed
// in random order (explore) when there are enough clicks on them, and
// falls back to a configured power otherwise; the record says which.
package ranktrain
