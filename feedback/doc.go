// Package feedback owns the feedback event log: the event schema and its
// validation, the Kafka producer that the API uses to publish impressions,
// clicks and purchases, a reader that replays a topic from the beginning up to
// the point where the read started (for the training job and tests), and an
// embedded Kafka-protocol broker so that one machine can run the whole system
// without a Kafka cluster.
//
// Everything speaks the Kafka wire protocol through franz-go: the embedded
// broker is franz-go's kfake, so switching to a real cluster is a change of
// broker addresses only. Records are plain Kafka records, readable by any
// client (the tests read them with kcat):
//
//	key     the user id, so one user's events stay ordered in one partition
//	value   the event as JSON (schema version 1, see Event)
//	headers schema_version ("1") and event_type
//
// # Flow
//
// Outside input goes through Decode (strict JSON, then Validate with the
// ingestion time window), then Event.EnsureID, then Producer.Publish, which
// returns after the broker acknowledged the write. Impressions built by the
// engine are checked with Event.Validate and sent with Producer.PublishAsync,
// which never blocks the response. ReadTopic replays everything written so
// far and validates records without the time window, because replayed events
// are old by nature.
//
// # Delivery
//
// The producer is idempotent (kgo's default) with acks=all: an acknowledged
// event is neither lost on a leader change nor duplicated by the client's own
// retries. A client that retries a POST can still cause a duplicate record;
// EventID is the key consumers deduplicate on.
//
// # Locking
//
// Producer.mu is held shared by Publish and PublishAsync and exclusively by
// Close, so Close waits for in-flight Publish calls and no record reaches a
// closed client. PublishAsync only tries the lock, so it never waits on Close.
// Delivery callbacks run on kgo's goroutines and take no lock of ours.
package feedback
