package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/gofiber/fiber/v2"
)

//go:embed openapi.yaml
var openapiSpec []byte

func (s *Server) openapi(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "application/yaml")
	return c.Send(openapiSpec)
}

// healthz says the process is up and serving HTTP; it checks nothing else
// so an orchestrator never restarts a process only because Redis is down.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// checkResult is one entry of the /readyz body.
type checkResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
}

// readyBody is the /readyz body. Failing lists names only: check errors may
// hold addresses, so they go to the log.
type readyBody struct {
	Status  string        `json:"status"`
	Checks  []checkResult `json:"checks"`
	Failing []string      `json:"failing,omitempty"`
}

// readyz runs every check concurrently under CheckTimeout and names the
// failing ones: 503 not_ready when a check the server cannot answer without
// fails, else 200 degraded when only degrading checks fail.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.CheckTimeout)
	defer cancel()
	errs := make([]error, len(s.checks))
	var wg sync.WaitGroup
	for i, ch := range s.checks {
		wg.Go(func() { errs[i] = runCheck(ctx, ch) })
	}
	wg.Wait()
	body := readyBody{Status: "ready", Checks: make([]checkResult, len(s.checks))}
	for i, ch := range s.checks {
		body.Checks[i] = checkResult{Name: ch.Name, OK: errs[i] == nil}
		if errs[i] != nil {
			body.Failing = append(body.Failing, ch.Name)
			s.log.WarnContext(ctx, "readiness check failed", slog.String("check", ch.Name),
				slog.String("request_id", requestIDOf(c)), slog.Any("error", errs[i]))
		}
	}
	for i, ch := range s.checks {
		if errs[i] != nil && !ch.Degrades {
			body.Status = "not_ready"
			return c.Status(http.StatusServiceUnavailable).JSON(body)
		}
	}
	if len(body.Failing) > 0 {
		body.Status = "degraded"
	}
	return c.JSON(body)
}

// runCheck runs one check in its own goroutine's frame; a panicking check
// fails instead of taking the process down (recoverPanic only covers the
// handler's goroutine). A check that ignores ctx is abandoned at the deadline.
func runCheck(ctx context.Context, ch Check) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("check %s panicked: %v", ch.Name, r)
			}
		}()
		done <- ch.Fn(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("check %s: %w", ch.Name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("check %s: %w", ch.Name, ctx.Err())
	}
}
