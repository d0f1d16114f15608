package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Admin routes.
const (
	routeAdminReload = "/admin/reload"
	routeAdminBundle = "/admin/bundle"
)

// CodeBundleRefused is the error code of a reload whose bundle failed to
// load; the live bundle keeps serving.
const CodeBundleRefused = "bundle_refused"

// AdminDeps are the operator operations the admin API exposes.
type AdminDeps struct {
	// Reload loads the bundle CURRENT names unless it is already live and
	// returns the live version before and after. An error means that
	// bundle was refused and before keeps serving.
	Reload func(ctx context.Context) (before, after string, err error)
	// Live is the version serving now ("" before the first load).
	Live   func() string
	Logger *slog.Logger
	// Keys, when any is configured, make every admin route need a key
	// with the admin scope.
	Keys *Keys
	// ReadTimeout, WriteTimeout and IdleTimeout bound the listener's
	// connections (slow headers, slow bodies, idle keep-alives); zero
	// takes 5 s, 10 s and 60 s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// Items serves the live catalog's routes (/admin/items); nil answers
	// them 409 live_catalog_off.
	Items *ItemsDeps
}

// Admin is the operator API: POST /admin/reload and GET /admin/bundle. It
// has no authentication of its own, so it listens apart from the public
// API, on loopback unless server.admin_addr says otherwise: who can reach
// the port can reload.
type Admin struct {
	app  *fiber.App
	deps AdminDeps
}

// NewAdmin builds the admin routes; it does not listen.
func NewAdmin(deps AdminDeps) (*Admin, error) {
	if deps.Reload == nil || deps.Live == nil {
		return nil, errors.New("api: admin deps Reload and Live are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Admin{deps: deps}
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	a.app = fiber.New(fiber.Config{AppName: "recsys-admin", DisableStartupMessage: true,
		ReadTimeout:  or(deps.ReadTimeout, 5*time.Second),
		WriteTimeout: or(deps.WriteTimeout, 10*time.Second),
		IdleTimeout:  or(deps.IdleTimeout, 60*time.Second),
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			status, d, _ := classify(err)
			return c.Status(status).JSON(errorBody{Error: d})
		}})
	a.app.Use(deps.Keys.require(ScopeAdmin))
	a.app.Post(routeAdminReload, a.reload)
	a.app.Get(routeAdminBundle, a.bundle)
	a.itemRoutes()
	jsonForUnknownMethods(a.app)
	return a, nil
}

// App exposes the fiber app, for app.Test in tests.
func (a *Admin) App() *fiber.App { return a.app }

// Serve serves the admin API on ln until Shutdown.
func (a *Admin) Serve(ln net.Listener) error { return a.app.Listener(ln) }

// Shutdown stops accepting connections and waits for in-flight requests.
func (a *Admin) Shutdown(ctx context.Context) error { return a.app.ShutdownWithContext(ctx) }

type reloadResult struct {
	Bundle   string `json:"bundle"`
	Previous string `json:"previous"`
	Changed  bool   `json:"changed"`
}

func (a *Admin) reload(c *fiber.Ctx) error {
	before, after, err := a.deps.Reload(c.UserContext())
	if err != nil {
		a.deps.Logger.Error("admin reload: bundle refused, the live bundle keeps serving", "live", before, "error", err)
		return c.Status(http.StatusConflict).JSON(struct {
			Error  errorDetail `json:"error"`
			Bundle string      `json:"bundle"`
		}{errorDetail{Code: CodeBundleRefused, Field: "CURRENT", Message: redactPaths(err.Error())}, before})
	}
	return c.JSON(reloadResult{Bundle: after, Previous: before, Changed: after != before})
}

func (a *Admin) bundle(c *fiber.Ctx) error {
	return c.JSON(struct {
		Bundle string `json:"bundle"`
	}{a.deps.Live()})
}

// pathLike matches absolute file paths in an error message.
var pathLike = regexp.MustCompile(`(/[^\s:'"/]+){2,}/?`)

// redactPaths keeps only the last element of every absolute path in msg:
// a client-facing error says which file, not where the server keeps it.
func redactPaths(msg string) string {
	return pathLike.ReplaceAllStringFunc(msg, func(p string) string { return filepath.Base(p) })
}
