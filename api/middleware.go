package api

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	headerRequestID = "X-Request-ID"
	maxRequestIDLen = 128
	// unmatchedRoute labels requests that hit no route, so a scan of random
	// paths cannot blow up the metrics' cardinality.
	unmatchedRoute = "unmatched"
)

// Keys for fiber's per-request locals; unexported types so no other
// middleware can collide with them.
type localKey int

const (
	localRequestID localKey = iota
	localRoute
	localKeyName // the API key's name, when one was presented
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	limited  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recsys_http_requests_total",
			Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recsys_http_request_duration_seconds",
			Help: "Time from the first middleware to the written response, by route.",
			// Finer than the default buckets at the low end: most answers
			// take a few milliseconds and the tail is what matters.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recsys_http_rate_limited_total",
		Help: "Requests answered 429 because the client's rate limit was spent, by route class (query, feedback).",
	}, []string{"class"})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.limited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// withRequestID takes the client's X-Request-ID when it is sane (so a trace
// spans the client and this service) and generates one otherwise. The id is
// echoed in the response and handed to the engine.
func (s *Server) withRequestID(c *fiber.Ctx) error {
	c.Locals(localRequestID, s.requestID(c))
	return c.Next()
}

func (s *Server) requestID(c *fiber.Ctx) string {
	if id, ok := c.Locals(localRequestID).(string); ok {
		return id
	}
	raw := c.Request().Header.Peek(headerRequestID)
	var id string
	if saneRequestID(raw) {
		// Peek aliases fasthttp's buffer, which is reused after the handler.
		id = string(raw)
	} else {
		id = uuid.NewString()
	}
	c.Set(headerRequestID, id)
	return id
}

// saneRequestID accepts ids that are safe to log and echo: short, and only
// characters that cannot split a log line or a header.
func saneRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > maxRequestIDLen {
		return false
	}
	for _, ch := range b {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case ch == '-', ch == '_', ch == '.', ch == ':':
		default:
			return false
		}
	}
	return true
}

// requestIDOf returns the id set by withRequestID, or "" before it ran.
func requestIDOf(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

// routeOf returns the route pattern a handler registered, never the raw
// path, so labels and logs stay bounded.
func routeOf(c *fiber.Ctx) string {
	if r, ok := c.Locals(localRoute).(string); ok {
		return r
	}
	return unmatchedRoute
}

// observe turns a handler's error into the JSON error response, then
// records metrics and the access log. It sits outside recovery and the
// deadline so it sees every outcome, including panics and timeouts.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if werr := s.respondError(c, err); werr != nil {
			return werr
		}
	}
	s.record(c, time.Since(start))
	return nil
}

func (s *Server) record(c *fiber.Ctx, took time.Duration) {
	route := routeOf(c)
	status := c.Response().StatusCode()
	s.metrics.requests.WithLabelValues(route, methodLabel(c.Method()), strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(route).Observe(took.Seconds())
	// The access log: every server error, a sample of the rest
	// (server.access_log), and everything at debug level.
	level := slog.LevelDebug
	if status >= 500 || (s.cfg.AccessLog > 0 && rand.Float64() < s.cfg.AccessLog) {
		level = slog.LevelInfo
	}
	if s.log.Enabled(c.UserContext(), level) {
		attrs := []slog.Attr{
			slog.String("request_id", requestIDOf(c)),
			slog.String("method", methodLabel(c.Method())),
			slog.String("path", strings.Clone(c.Path())),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Duration("took", took),
			slog.String("client", strings.Clone(c.IP())),
		}
		if key, ok := c.Locals(localKeyName).(string); ok {
			attrs = append(attrs, slog.String("key", key))
		}
		s.log.LogAttrs(c.UserContext(), level, "http request", attrs...)
	}
}

// methodLabel maps the request method to a constant string. c.Method()
// aliases fasthttp's reused buffer, and a metric keeps its label values
// forever, so passing it on directly corrupts earlier series.
func methodLabel(m string) string {
	for _, known := range []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut,
		fiber.MethodPatch, fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace} {
		if m == known {
			return known
		}
	}
	return "other"
}

// recoverPanic turns a panic in a handler into an error so the client gets
// a 500 JSON body and the process keeps serving. The stack is logged by
// respondError.
func (s *Server) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return c.Next()
}

// withDeadline gives every request a context bounded by RequestTimeout;
// handlers pass it to the engine and the publisher.
func (s *Server) withDeadline(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}

// fiberErrorHandler answers errors raised by fasthttp before any middleware
// ran, such as a body over BodyLimit. Errors from routes never get here:
// observe has already written them.
func (s *Server) fiberErrorHandler(c *fiber.Ctx, err error) error {
	c.Locals(localRequestID, s.requestID(c))
	if werr := s.respondError(c, err); werr != nil {
		return werr
	}
	// No duration: the request never reached the timed middleware.
	s.metrics.requests.WithLabelValues(routeOf(c), methodLabel(c.Method()), strconv.Itoa(c.Response().StatusCode())).Inc()
	return nil
}
