// Package redisd owns the Redis-protocol servers the project starts itself.
//
// Start runs an in-process server (alicebob/miniredis) on 127.0.0.1 so the
// one-machine default speaks the same wire protocol as production and the
// feature store code path never changes, only its address. It keeps data in
// memory only: restarting the process loses it, which is fine because the
// offline build rewrites every feature version it publishes.
//
// Exec starts a real redis-server subprocess for tests of any package, so the
// feature store's contract suite also runs against the real implementation.
// It returns ErrNoRedisServer when the binary is missing so callers can skip
// with a clear message instead of failing.
package redisd
