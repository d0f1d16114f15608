// Package eventlog is the feedback event log: the Kafka producer, the
// no-loss Sink in front of it (an fsynced on-disk Spool used while Kafka
// does not answer, and a dead-letter topic for events refused after
// acceptance), the training readers (Replay, ReadTopic) and an embedded
// Kafka-protocol broker (franz-go's kfake) so one machine runs the whole
// system without a cluster. Switching to a real cluster changes the broker
// addresses only. Records are plain Kafka records, readable by any client:
//
//	key     the user id, so one user's events stay ordered in one partition
//	value   the event as JSON (package feedback, schema version 1)
//	headers schema_version ("1") and event_type
//
// # Invariants
//
// Acknowledgement. Sink.Publish and Sink.PublishBatch return nil only when
// every event is durable: acknowledged by the broker (idempotent producer,
// acks=all), or fsynced in the spool. Spool.Append returns nil only if,
// when it returns, each entry it wrote is in a segment file fsynced after
// the write whose directory entry was fsynced after its creation, or the
// entry was already delivered and its drain committed (Spool.syncUpTo is
// the one place that decides; an fsync that fails marks its file, whose
// entries are then never acknowledged, and recovery cuts such a file's
// lost tail instead of refusing the directory).
//
// Spooling. An event the broker has not acknowledged within
// kafka.spool_after is spooled; from then on every new event is spooled
// behind it until Sink.Run has drained the spool, so the spool is
// delivered in order. The switch back to Kafka happens only with the spool
// empty and no append in progress (Sink.switchMu), so an event never
// reaches Kafka directly while an earlier one is still on its way into the
// spool: each user's events reach the topic in the order they were
// accepted. A record the client still holds when spool_after passes may be
// delivered as well when the broker answers: a duplicate, which consumers
// drop by event id. The drain cursor is written after the broker
// acknowledged a batch, so a crash re-delivers at most that batch.
//
// Bounds. A full spool refuses (FullError, 503 with Retry-After); nothing
// acknowledged is ever dropped.
//
// # Lock order
//
// Sink.switchMu (shared by appenders, exclusive to the drainer's switch)
// before Spool.syncMu before Spool.mu. Spool.mu guards the segment list and
// the open writer and is never held across an fsync, a close of a written
// file or a directory sync (a failed fsync's marker file is the exception,
// on that error path only). Producer.mu is held shared by publishes and
// exclusively by Close, so Close waits for in-flight publishes and no record
// reaches a closed client; PublishAsync only tries it, so it never waits
// on Close. Delivery callbacks run on franz-go's goroutines and take no lock
// of ours.
package eventlog
