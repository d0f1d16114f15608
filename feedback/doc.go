// Package feedback owns the feedback event log: the versioned event schemas
// (impression, click, add_to_cart, purchase, dwell) and their validation, the
// Kafka producer, the no-loss Sink in front of it (an fsynced on-disk Spool
// used while Kafka is unreachable, and a dead-letter topic for events refused
// after acceptance), the consumers (Counters, the real-time counter updater in
// a consumer group; Replay and ReadTopic, the training reader), and an
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
// # No loss
//
// Sink.Publish returns nil only when the event is acknowledged by the broker
// or fsynced in the spool. Once anything is spooled, new events queue behind
// it until Sink.Run has drained the spool in order; the drain cursor is
// written after the broker acknowledged, so a crash re-delivers at most one
// batch, which consumers drop by event id. A full spool is refused
// (FullError, 503 with Retry-After), never dropped. Records the client could
// not fail during an outage (possibly already on the broker) are delivered
// when it returns as well as from the spool: duplicates, again dropped by id.
//
// # Locking
//
// Spool.mu guards the segment list and the writer; Spool.syncMu serialises
// fsyncs (group commit) and is never taken while holding mu.
// Producer.mu is held shared by Publish and PublishAsync and exclusively by
// Close, so Close waits for in-flight Publish calls and no record reaches a
// closed client. PublishAsync only tries the lock, so it never waits on Close.
// Delivery callbacks run on kgo's goroutines and take no lock of ours.
package feedback
