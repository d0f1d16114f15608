package offline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints one line per step and a throttled bar for long steps.
type progress struct {
	mu    sync.Mutex // bar is called from the encoder's parallel workers
	w     io.Writer
	start time.Time
	last  time.Time
	n     int
}

func (p *progress) step(format string, args ...any) {
	p.n++
	p.start = time.Now()
	if p.w != nil {
		fmt.Fprintf(p.w, "[%d] %s ...\n", p.n, fmt.Sprintf(format, args...))
	}
}

func (p *progress) done(format string, args ...any) {
	if p.w != nil {
		fmt.Fprintf(p.w, "    done in %s: %s\n", time.Since(p.start).Round(time.Millisecond), fmt.Sprintf(format, args...))
	}
}

// bar reports done/total at most twice a second, and always at the end.
func (p *progress) bar(done, total int) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if done < total && time.Since(p.last) < 500*time.Millisecond {
		return
	}
	p.last = time.Now()
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "    %d/%d (%.0f%%) %.0f/s\n", done, total, 100*float64(done)/float64(max(total, 1)), rate)
}

func shortHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:6])
}
