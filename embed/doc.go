// Package embed turns text into embedding vectors.
//
// It owns text normalisation and featurisation (hashed words, word bigrams
// and character n-grams), the ONNX embedding models the project builds
// itself (a hashed embedding bag with a projection and L2 normalisation,
// untrained from BuildHashedModel or with trained weights from
// BuildBagModel, which offline/embedtrain uses to export), the Encoder that
// runs such a model through ONNX Runtime, and the cache of query
// embeddings.
//
// A model carries its featurizer parameters in its metadata, so whoever
// encodes text with a model tokenises it exactly as the model was built;
// there is no separate tokenizer setting to drift out of sync, and a model
// whose metadata is missing, invalid or names a field this build does not
// know is refused.
//
// For BERT-family encoders a user supplies (for example all-MiniLM-L6-v2's
// model.onnx and vocab.txt) it has a WordPiece tokeniser written here
// (BERT basic tokenisation with lowercasing, accent stripping and
// punctuation splitting, then greedy longest-match-first with "##"
// continuations), tested against golden ids from the Hugging Face
// tokenizer in testdata/wordpiece, and the BERT encoder: batched runs with
// a dynamic sequence length, masked mean pooling over last_hidden_state
// and L2 normalisation.
package embed
