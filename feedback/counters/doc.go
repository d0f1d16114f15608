// Package counters is the real-time counter updater: a Kafka consumer
// group that turns the events topic into the Redis state the ranker's
// counter and user features read (internal/realtime's layout): per item,
// time-decayed impressions and clicks; per user, the most recent items
// clicked, carted or bought. Each event is applied together with its
// dedupe mark in one Lua script, so a redelivered event never counts
// twice, and offsets are committed only after Redis holds the batch.
package counters
