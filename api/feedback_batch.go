package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/strictjson"
)

// MaxBatchEvents bounds POST /v1/feedback/batch; stated in openapi.yaml.
const MaxBatchEvents = 1000

const routeFeedbackBatch = "/v1/feedback/batch"

// BatchPublisher makes a batch of events durable together, sending the
// invalid ones to the dead-letter topic; *eventlog.Sink satisfies it. A
// Publisher without it gets the batch endpoint too, publishing one event at
// a time and reporting invalid events as rejected instead of dead-lettered.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, evs []feedback.Event, dead []eventlog.DeadLetter) (eventlog.Outcome, error)
}

var _ BatchPublisher = (*eventlog.Sink)(nil)

// Per-event statuses of a batch response.
const (
	statusAccepted     = "accepted"
	statusDeadLettered = "dead_lettered"
	statusRejected     = "rejected"
)

type batchBody struct {
	Events []json.RawMessage `json:"events"`
}

// batchResult is one event's outcome, in the order of the request.
type batchResult struct {
	Index   int    `json:"index"`
	Status  string `json:"status"`
	EventID string `json:"event_id,omitempty"`
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

type batchResponse struct {
	Accepted     int           `json:"accepted"`
	DeadLettered int           `json:"dead_lettered"`
	Rejected     int           `json:"rejected"`
	Results      []batchResult `json:"results"`
}

// decodeBatch parses the batch envelope strictly and each event with
// feedback.Decode. A malformed envelope is an error (400); an invalid event
// is reported in its result and returned as a dead letter.
// max bounds the events (0 means MaxBatchEvents).
func decodeBatch(body []byte, now time.Time, max int) ([]feedback.Event, []eventlog.DeadLetter, []batchResult, error) {
	if max <= 0 {
		max = MaxBatchEvents
	}
	var b batchBody
	if err := strictjson.Decode(body, &b, ""); err != nil {
		return nil, nil, nil, invalid(err.Field, "%s", err.Reason)
	}
	if len(b.Events) == 0 {
		return nil, nil, nil, invalid("events", "required, at least one event")
	}
	if len(b.Events) > max {
		return nil, nil, nil, invalid("events", "at most %d events per batch", max)
	}
	results := make([]batchResult, len(b.Events))
	evs := make([]feedback.Event, 0, len(b.Events))
	var dead []eventlog.DeadLetter
	for i, raw := range b.Events {
		results[i].Index = i
		ev, err := feedback.Decode(raw, now)
		if err != nil {
			field, reason := "body", err.Error()
			var fe *feedback.FieldError
			if errors.As(err, &fe) {
				field, reason = fe.ClientError()
			}
			results[i].Status, results[i].Field, results[i].Reason = statusDeadLettered, "events["+strconv.Itoa(i)+"]."+field, reason
			dead = append(dead, eventlog.DeadLetter{Source: "batch", Index: i, Field: field, Reason: reason,
				Payload: string(raw), ReceivedAt: now.UTC(), Key: userIDOf(raw)})
			continue
		}
		results[i].EventID = ev.EnsureID()
		results[i].Status = statusAccepted
		evs = append(evs, ev)
	}
	return evs, dead, results, nil
}

// userIDOf reads user_id from an invalid event when it can, so its dead
// letter is keyed like the user's other events.
func userIDOf(raw json.RawMessage) string {
	var v struct {
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(raw, &v) != nil || len(v.UserID) > feedback.MaxIDBytes {
		return ""
	}
	return v.UserID
}

func (s *Server) feedbackBatch(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	evs, dead, results, err := decodeBatch(c.Body(), s.now(), s.cfg.MaxBatchEvents)
	if err != nil {
		return err
	}
	err = s.keys.feedbackUser(c, s.now(), func() []string {
		users := make([]string, 0, len(evs)+len(dead))
		for _, ev := range evs {
			users = append(users, ev.UserID)
		}
		for _, d := range dead {
			if d.Key != "" { // an unreadable event is keyed by no one
				users = append(users, d.Key)
			}
		}
		return users
	})
	if err != nil {
		return err
	}
	bp, ok := s.pub.(BatchPublisher)
	if !ok {
		return s.batchOneByOne(c, evs, results)
	}
	if _, err := bp.PublishBatch(c.UserContext(), evs, dead); err != nil {
		return s.publishError(c, err)
	}
	return c.Status(http.StatusOK).JSON(summarise(results))
}

// batchOneByOne serves the batch with a Publisher that cannot dead-letter.
func (s *Server) batchOneByOne(c *fiber.Ctx, evs []feedback.Event, results []batchResult) error {
	for i := range results {
		if results[i].Status == statusDeadLettered {
			results[i].Status = statusRejected
		}
	}
	for _, ev := range evs {
		if err := s.pub.Publish(c.UserContext(), ev); err != nil {
			return s.publishError(c, err)
		}
	}
	return c.Status(http.StatusOK).JSON(summarise(results))
}

func summarise(results []batchResult) batchResponse {
	r := batchResponse{Results: results}
	for _, res := range results {
		switch res.Status {
		case statusAccepted:
			r.Accepted++
		case statusDeadLettered:
			r.DeadLettered++
		default:
			r.Rejected++
		}
	}
	return r
}

// publishError maps a publisher failure: a full spool is a 503 with
// Retry-After, anything else a plain 503 (the client retries with the same
// event ids).
func (s *Server) publishError(c *fiber.Ctx, err error) error {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(ra.RetryAfter().Seconds()))))
	}
	return &unavailableError{what: "feedback log", err: fmt.Errorf("publish: %w", err)}
}
