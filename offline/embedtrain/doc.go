// Package embedtrain trains the hashed embedding-bag text encoder offline.
//
// A Model holds the same weights embed.BuildBagModel exports (embedding
// table and projection) and a Go forward pass equal to the exported ONNX
// graph; Train fits it to positive text pairs with a symmetric in-batch
// softmax loss and Adagrad, on all cores, reproducibly for a seed.
//
// Pairs come from three sources, each optional: the catalog (CatalogPairs:
// title vs description and tags, so a new catalog trains before any
// traffic), search feedback (FeedbackLog.SearchPairs: the query typed vs
// the item engaged with from its results) and co-engagement
// (FeedbackLog.CoEngagementPairs: items one user engaged with in close
// succession). A FeedbackLog is fed events from the topic (eventlog.Replay
// or eventlog.ReadTopic) or from a JSON Lines file (ReadEventsFile).
// Labelled query-document pairs of a BEIR dataset (QueryPairs) and
// CrossValidate measure what training buys with folds over judged queries.
//
// `recsys train embed --out` writes the model; `recsys build` embeds with
// it when embed.model_file names it.
package embedtrain
