package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/feedback"
)

// Engine answers search and recommend requests; *engine.Engine satisfies it.
type Engine interface {
	Search(ctx context.Context, req engine.SearchRequest) (engine.Result, error)
	Recommend(ctx context.Context, req engine.RecommendRequest) (engine.Result, error)
}

// Publisher sends one feedback event to the event log. It must return only
// once the event is durably accepted: the API answers 202 after it.
type Publisher interface {
	Publish(ctx context.Context, ev feedback.Event) error
}

// Check is one readiness condition (bundle loaded, Redis reachable, Kafka
// reachable). Fn must honour ctx: /readyz gives it CheckTimeout.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
	// Degrades marks a dependency the server answers without, at lower
	// quality (Redis: default features; Kafka with a spool: events wait
	// on disk). Its failure makes /readyz say "degraded" with 200 rather
	// than 503: every replica shares it, and taking them all out of the
	// load balancer would turn a degradation into an outage.
	Degrades bool
}

// Deps are the collaborators of a Server. Engine and Feedback are required.
type Deps struct {
	Engine   Engine
	Feedback Publisher
	Checks   []Check
	// Logger defaults to a logger that discards everything.
	Logger *slog.Logger
	// Registerer receives the HTTP metrics; Gatherer is what /metrics
	// serves. Both default to one fresh registry when both are nil.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Now stamps feedback events that carry no timestamp; defaults to time.Now.
	Now func() time.Time
	// Keys are the API keys and user-token secret (LoadKeys); nil leaves
	// the API open.
	Keys *Keys
}

// Server is the HTTP API.
type Server struct {
	app     *fiber.App
	cfg     Config
	lim     kLimits
	eng     Engine
	pub     Publisher
	checks  []Check
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	keys    *Keys
}

// Route patterns, shared by registration, metrics labels and tests.
const (
	routeSearch    = "/v1/search"
	routeRecommend = "/v1/recommend"
	routeFeedback  = "/v1/feedback"
	routeHealthz   = "/healthz"
	routeReadyz    = "/readyz"
	routeMetrics   = "/metrics"
	routeOpenAPI   = "/openapi.yaml"
)

// New validates cfg and deps and builds the routes; it does not listen.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	if deps.Engine == nil {
		return nil, errors.New("api: deps.Engine is required")
	}
	if deps.Feedback == nil {
		return nil, errors.New("api: deps.Feedback is required")
	}
	for i, ch := range deps.Checks {
		if ch.Name == "" || ch.Fn == nil {
			return nil, fmt.Errorf("api: deps.Checks[%d]: name and fn are required", i)
		}
	}
	reg, gat := deps.Registerer, deps.Gatherer
	switch {
	case reg == nil && gat == nil:
		r := prometheus.NewRegistry()
		reg, gat = r, r
	case reg == nil || gat == nil:
		return nil, errors.New("api: deps.Registerer and deps.Gatherer must be set together")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		lim:     kLimits{max: cfg.MaxK, def: cfg.DefaultK, recent: cfg.MaxRecentItems},
		eng:     deps.Engine,
		pub:     deps.Feedback,
		checks:  deps.Checks,
		log:     deps.Logger,
		now:     deps.Now,
		metrics: m,
		keys:    deps.Keys,
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "recsys",
		DisableStartupMessage: true,
		BodyLimit:             cfg.BodyLimitBytes,
		ReadTimeout:           cfg.ReadTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		ErrorHandler:          s.fiberErrorHandler,
	})
	// Order matters: the id first so every error carries it, observe
	// outside recovery and the deadline so it sees panics and timeouts.
	s.app.Use(s.withRequestID, s.observe, s.recoverPanic, s.withDeadline)
	metricsHandler := adaptor.HTTPHandler(promhttp.HandlerFor(gat, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	// Access: the key and its scope first (401/403), then the client's
	// rate (429), then the handler.
	query := []fiber.Handler{s.keys.require(ScopeQuery), newLimiter(classQuery, cfg.Limits.QueryRPS, cfg.Limits.QueryBurst, m.limited).middleware()}
	fb := []fiber.Handler{s.keys.require(ScopeFeedback), newLimiter(classFeedback, cfg.Limits.FeedbackRPS, cfg.Limits.FeedbackBurst, m.limited).middleware()}
	route := func(name string, guard []fiber.Handler, h fiber.Handler) []fiber.Handler {
		return append(append([]fiber.Handler{named(name)}, guard...), h)
	}
	s.app.Post(routeSearch, route(routeSearch, query, s.search)...)
	s.app.Post(routeRecommend, route(routeRecommend, query, s.recommend)...)
	s.app.Post(routeRulesDryRun, route(routeRulesDryRun, query, s.dryRun)...)
	s.app.Post(routeFeedback, route(routeFeedback, fb, s.feedback)...)
	s.app.Post(routeFeedbackBatch, route(routeFeedbackBatch, fb, s.feedbackBatch)...)
	s.app.Get(routeHealthz, named(routeHealthz), s.healthz)
	s.app.Get(routeReadyz, named(routeReadyz), s.readyz)
	s.app.Get(routeMetrics, named(routeMetrics), metricsHandler)
	s.app.Get(routeOpenAPI, named(routeOpenAPI), s.openapi)
	if cfg.Playground {
		s.servePlayground()
	}
	jsonForUnknownMethods(s.app)
	return s, nil
}

// named records the route pattern for metrics and logs before the handler.
func named(route string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Locals(localRoute, route)
		return c.Next()
	}
}

// App exposes the fiber app, for app.Test in tests.
func (s *Server) App() *fiber.App { return s.app }

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.app.Listener(ln); err != nil {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("shutdown http server: %w", err)
	}
	return nil
}

func (s *Server) search(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	req, err := decodeSearch(c.Body(), s.lim)
	if err != nil {
		return err
	}
	req.RequestID = requestIDOf(c)
	res, err := s.eng.Search(c.UserContext(), req)
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	return c.JSON(finish(res, req.RequestID))
}

func (s *Server) recommend(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	req, err := decodeRecommend(c.Body(), s.lim)
	if err != nil {
		return err
	}
	req.RequestID = requestIDOf(c)
	res, err := s.eng.Recommend(c.UserContext(), req)
	if err != nil {
		return fmt.Errorf("recommend: %w", err)
	}
	return c.JSON(finish(res, req.RequestID))
}

// finish fills what the response promises even when the engine left it
// out: the request id, and "items": [] rather than null.
func finish(res engine.Result, requestID string) engine.Result {
	if res.RequestID == "" {
		res.RequestID = requestID
	}
	if res.Items == nil {
		res.Items = []engine.Hit{}
	}
	return res
}

// feedbackAccepted is the 202 body of POST /v1/feedback.
type feedbackAccepted struct {
	EventID string `json:"event_id"`
}

func (s *Server) feedback(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	ev, err := feedback.Decode(c.Body(), s.now())
	if err != nil {
		return fmt.Errorf("decode feedback: %w", err)
	}
	// Assigned here, before publishing, so the id the client gets back is
	// the one on the record.
	ev.EnsureID()
	if err := s.keys.feedbackUser(c, s.now(), func() []string { return []string{ev.UserID} }); err != nil {
		return err
	}
	if err := s.pub.Publish(c.UserContext(), ev); err != nil {
		return s.publishError(c, err)
	}
	return c.Status(http.StatusAccepted).JSON(feedbackAccepted{EventID: ev.EventID})
}

// requireJSON refuses bodies that do not say they are JSON, so a form post
// or a text/plain body is a clear 415 and not a confusing parse error.
func requireJSON(c *fiber.Ctx) error {
	ct := string(c.Request().Header.ContentType())
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return &requestError{status: http.StatusUnsupportedMediaType, code: CodeUnsupportedMediaType,
		field: "Content-Type", msg: "must be application/json (utf-8)"}
}
