// Package offline owns the batch jobs. Build turns a catalog into a
// published bundle: validate, embed every item, index, compute item
// features (into the bundle and, when configured, into the feature store),
// write the ranker, and publish atomically. A build that fails at any step
// publishes nothing, so the live bundle keeps serving.
package offline
