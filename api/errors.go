package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/recsys-dev/recsys/engine"
)

// Error codes carried in every error body. Clients switch on these, not on
// the message, so they are part of the API (see openapi.yaml).
const (
	CodeInvalidArgument      = "invalid_argument"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeUnavailable          = "unavailable"
	CodeDeadlineExceeded     = "deadline_exceeded"
	CodeCanceled             = "canceled"
	CodeInternal             = "internal"
)

// statusClientClosed is nginx's convention for a request whose client went
// away; nobody reads the answer, but the access log and metrics should not
// count it as a server failure.
const statusClientClosed = 499

// requestError is a client error found by the api package itself (decoding,
// content type, size). Errors from other packages reach the client through
// the ClientError method instead.
type requestError struct {
	status int
	code   string
	field  string
	msg    string
}

func (e *requestError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// invalid builds the common 400 error for one field.
func invalid(field, format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, code: CodeInvalidArgument, field: field, msg: fmt.Sprintf(format, args...)}
}

// unavailableError marks a dependency failure the client may retry (the
// feedback publisher); it keeps the cause for the log only.
type unavailableError struct {
	what string
	err  error
}

func (e *unavailableError) Error() string { return e.what + ": " + e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// panicError carries a recovered panic to the error mapping.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// clientError is implemented by errors from the engine and the feedback
// package that are the client's fault.
type clientError interface {
	ClientError() (field, reason string)
}

// notFounder lets an engine client error say that the id it names does not
// exist, which is a 404 rather than a 400.
type notFounder interface {
	NotFound() bool
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// classify is the one place that maps an error to a status code and the
// detail shown to the client. serverFault says whether the cause must be
// logged: such errors get a generic message so internals never leak.
func classify(err error) (status int, d errorDetail, serverFault bool) {
	var (
		re  *requestError
		ce  clientError
		ue  *unavailableError
		pe  *panicError
		fe  *fiber.Error
		nfe notFounder
	)
	switch {
	case errors.As(err, &re):
		return re.status, errorDetail{Code: re.code, Field: re.field, Message: re.msg}, false
	case errors.As(err, &pe):
		return http.StatusInternalServerError, errorDetail{Code: CodeInternal, Message: "internal error"}, true
	case errors.As(err, &ce):
		field, reason := ce.ClientError()
		if errors.As(err, &nfe) && nfe.NotFound() {
			return http.StatusNotFound, errorDetail{Code: CodeNotFound, Field: field, Message: reason}, false
		}
		return http.StatusBadRequest, errorDetail{Code: CodeInvalidArgument, Field: field, Message: reason}, false
	case errors.Is(err, engine.ErrNotReady):
		return http.StatusServiceUnavailable, errorDetail{Code: CodeUnavailable, Message: "no bundle loaded yet, retry later"}, false
	case errors.As(err, &ue):
		return http.StatusServiceUnavailable, errorDetail{Code: CodeUnavailable, Message: ue.what + " unavailable, retry later"}, true
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, errorDetail{Code: CodeDeadlineExceeded, Message: "request deadline exceeded"}, true
	case errors.Is(err, context.Canceled):
		return statusClientClosed, errorDetail{Code: CodeCanceled, Message: "request canceled"}, false
	case errors.As(err, &fe):
		return fiberError(fe)
	default:
		return http.StatusInternalServerError, errorDetail{Code: CodeInternal, Message: "internal error"}, true
	}
}

// fiberError maps errors raised by fiber or fasthttp before a handler runs
// (no route, wrong method, body over the limit). Their messages may echo the
// path, so the client gets a fixed text per status.
func fiberError(fe *fiber.Error) (int, errorDetail, bool) {
	switch fe.Code {
	case http.StatusNotFound:
		return fe.Code, errorDetail{Code: CodeNotFound, Field: "path", Message: "no such route"}, false
	case http.StatusMethodNotAllowed:
		return fe.Code, errorDetail{Code: CodeMethodNotAllowed, Field: "method", Message: "method not allowed on this route"}, false
	case http.StatusRequestEntityTooLarge:
		return fe.Code, errorDetail{Code: CodePayloadTooLarge, Field: "body", Message: "request body too large"}, false
	case http.StatusUnsupportedMediaType:
		return fe.Code, errorDetail{Code: CodeUnsupportedMediaType, Field: "Content-Type", Message: "content type must be application/json"}, false
	}
	if fe.Code >= 400 && fe.Code < 500 {
		// Other transport-level client errors (bad headers, timeouts while
		// reading): fiber's text is a status phrase or a parser message.
		return fe.Code, errorDetail{Code: CodeInvalidArgument, Field: "request", Message: http.StatusText(fe.Code)}, false
	}
	return http.StatusInternalServerError, errorDetail{Code: CodeInternal, Message: "internal error"}, true
}

// respondError writes err as the JSON error body and logs server faults.
func (s *Server) respondError(c *fiber.Ctx, err error) error {
	status, d, serverFault := classify(err)
	d.RequestID = requestIDOf(c)
	if serverFault {
		attrs := []any{slog.String("request_id", d.RequestID), slog.Int("status", status),
			slog.String("route", routeOf(c)), slog.Any("error", err)}
		var pe *panicError
		if errors.As(err, &pe) {
			attrs = append(attrs, slog.String("stack", string(pe.stack)))
		}
		s.log.ErrorContext(c.UserContext(), "request failed", attrs...)
	}
	return c.Status(status).JSON(errorBody{Error: d})
}

// jsonForUnknownMethods answers a request whose method fiber does not
// know (it would write a plain-text 400 before any middleware runs) with
// the API's JSON error body, on both listeners.
func jsonForUnknownMethods(app *fiber.App) {
	srv := app.Server()
	inner := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if slices.Contains(fiber.DefaultMethods, string(ctx.Method())) {
			inner(ctx)
			return
		}
		id := uuid.NewString()
		ctx.Response.Header.Set(headerRequestID, id)
		ctx.SetStatusCode(http.StatusBadRequest)
		ctx.SetContentType(fiber.MIMEApplicationJSON)
		body, _ := json.Marshal(errorBody{Error: errorDetail{Code: CodeInvalidArgument, Field: "method",
			Message: "unknown HTTP method", RequestID: id}})
		ctx.SetBody(body)
	}
}
