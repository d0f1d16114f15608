//go:build !unix

package eventlog

import "errors"

// errDirLocked is never returned where directories are not locked.
var errDirLocked = errors.New("in use by another broker")

// lockDir is a no-op where flock is unavailable; the embedded broker then
// relies on the operator not to start two brokers on one data dir.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }
