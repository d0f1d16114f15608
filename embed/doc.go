// Package embed turns text into embedding vectors.
//
// It owns text normalisation and featurisation (hashed words, word bigrams
// and character n-grams), the ONNX embedding models the project builds
// itself (a hashed embedding bag with a projection and L2 normalisation),
// the Encoder that runs such a model through ONNX Runtime, and the cache of
// query embeddings.
//
// A model carries its featurizer parameters in its metadata, so whoever
// encodes text with a model tokenises it exactly as the model was built;
// there is no separate tokenizer setting to drift out of sync.
package embed
