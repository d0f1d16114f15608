// Package feedback owns the feedback events: the versioned schemas
// (impression, click, add_to_cart, purchase, dwell), their strict decoding
// from outside input (Decode: strict JSON, then Validate with the ingestion
// time window) and from the log (DecodeStored: the schema without the time
// window, since replayed events are old by nature), and the limits on what
// a client may send. It is what the HTTP layer needs; the event log that
// carries the events (feedback/eventlog) and the consumer that turns them
// into real-time features (feedback/counters) build on it.
//
// Every event has an EventID, assigned by EnsureID when the client sent
// none: it is the idempotency key every consumer deduplicates on.
package feedback
