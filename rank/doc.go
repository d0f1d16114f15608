// Package rank owns the ranking stage's inputs and models: the feature specs
// (which features exist, where each comes from, its default), the built-in
// item features computed at build time, the Redis feature store that serves
// them online, and the scorers (linear and ONNX) that turn feature vectors
// into scores. TrainLambdaMART fits gradient-boosted trees to ranked lists
// (histogram splits, NDCG@k lambdas, early stopping on held-out queries)
// and BuildTreeModel exports them as an ONNX TreeEnsembleRegressor, which
// ONNX Runtime scores exactly as Ensemble.Score does.
//
// Feature vectors are always laid out in the order the config declares them;
// that order is stored with every model and bundle, and a model whose feature
// names differ is refused, because silently mis-aligned features score
// nonsense without any error.
//
// The feature store keys every value by bundle version
// (<prefix>:<version>:i:<item id>) and writes a ready marker last, so a
// request that pinned one bundle never reads features of another generation
// and a half-written version is never served.
package rank
