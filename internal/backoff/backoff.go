// Package backoff holds the pause the service's retry loops share.
package backoff

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends; it reports whether the full pause
// passed (false: stop retrying, the context is done).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
