//go:build unix

package eventlog

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// errDirLocked says another process (or broker) already uses the data dir.
var errDirLocked = errors.New("in use by another broker")

// lockDir takes an exclusive, non-blocking flock on path. The lock goes away
// with the process, so a crash never leaves a stale lock behind.
func lockDir(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errDirLocked
		}
		return nil, fmt.Errorf("flock: %w", err)
	}
	return f.Close, nil
}
