// Package embedtrain trains the hashed embedding-bag text encoder offline.
//
// A Model holds the same weights embed.BuildBagModel exports (embedding
// table and projection) and a Go forward pass equal to the exported ONNX
// graph; Train fits it to positive text pairs with a symmetric in-batch
// softmax loss and Adagrad, on all cores, reproducibly for a seed. Pairs
// come from the catalog (title vs description and tags) or from labelled
// query-document pairs; CrossValidate measures what training buys on a
// BEIR dataset with folds over its judged queries.
package embedtrain
