package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// LimitsConfig are the per-client request rates. A client is its API key
// or, without one, its address; 0 turns a limit off.
type LimitsConfig struct {
	QueryRPS      float64 `yaml:"query_rps"`
	QueryBurst    int     `yaml:"query_burst"`
	FeedbackRPS   float64 `yaml:"feedback_rps"`
	FeedbackBurst int     `yaml:"feedback_burst"`
}

// Route classes the limits apply to.
const (
	classQuery    = "query"
	classFeedback = "feedback"
)

// maxLimiters bounds the per-client state: past it, clients whose bucket
// has refilled (idle ones) are forgotten, which costs them nothing.
const maxLimiters = 100_000

// limiter is one route class's token buckets, per client.
type limiter struct {
	class   string
	limit   rate.Limit
	burst   int
	mu      sync.Mutex
	clients map[string]*rate.Limiter
	limited prometheus.Counter
}

func newLimiter(class string, rps float64, burst int, limited *prometheus.CounterVec) *limiter {
	if rps <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(rps)))
	}
	return &limiter{class: class, limit: rate.Limit(rps), burst: burst, clients: map[string]*rate.Limiter{},
		limited: limited.WithLabelValues(class)}
}

// client is who a request counts against: its key's name, else its
// address.
func client(c *fiber.Ctx) string {
	if name, ok := c.Locals(localKeyName).(string); ok {
		return "key:" + name
	}
	return "addr:" + c.IP()
}

// take spends one token of who's bucket, or says how long until one is
// there.
func (l *limiter) take(who string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.clients[who]
	if b == nil {
		if len(l.clients) >= maxLimiters {
			for k, v := range l.clients {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.clients, k)
				}
			}
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.clients[who] = b
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	r := b.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}

// middleware answers 429 with Retry-After (whole seconds, at least 1)
// when the client's bucket is empty, and counts it.
func (l *limiter) middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if l == nil {
			return c.Next()
		}
		ok, wait := l.take(client(c), time.Now())
		if ok {
			return c.Next()
		}
		l.limited.Inc()
		secs := max(1, int(math.Ceil(wait.Seconds())))
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		return &requestError{status: http.StatusTooManyRequests, code: CodeRateLimited,
			msg: "rate limit of " + strconv.FormatFloat(float64(l.limit), 'g', -1, 64) + " requests/s exceeded; retry after " + strconv.Itoa(secs) + " s"}
	}
}
