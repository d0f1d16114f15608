package api

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/rules"
)

const routeRulesDryRun = "/v1/rules/dry-run"

// maxRulesBytes bounds a dry run's rules text.
const maxRulesBytes = 64 << 10

// dryRunBody is POST /v1/rules/dry-run: a rule set, as a rules file
// holds it (YAML), and one search or recommend request.
type dryRunBody struct {
	Rules     *string         `json:"rules"`
	Search    json.RawMessage `json:"search"`
	Recommend json.RawMessage `json:"recommend"`
}

// dryRunResult answers both lists and what changed between them.
type dryRunResult struct {
	Live engine.Result `json:"live"`
	Dry  engine.Result `json:"dry"`
	Diff dryRunDiff    `json:"diff"`
}

type dryRunDiff struct {
	Added   []string `json:"added"`   // in the dry list only
	Removed []string `json:"removed"` // in the live list only
	Moved   []moved  `json:"moved"`   // in both, at another position
}

type moved struct {
	ID   string `json:"id"`
	From int    `json:"from"` // 1-based
	To   int    `json:"to"`
}

// dryRun applies the rules in the body instead of the live ones to one
// request, and the live ones to the same request, without emitting an
// impression for the dry one: a merchandiser sees what a rule would do
// before it ships. Both lists come from the same bundle, in one call each.
func (s *Server) dryRun(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var b dryRunBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.Rules == nil {
		return invalid("rules", "is required (a rules file's YAML: time_zone, filters, business)")
	}
	if len(*b.Rules) > maxRulesBytes {
		return invalid("rules", "must be at most %d bytes", maxRulesBytes)
	}
	if (b.Search == nil) == (b.Recommend == nil) {
		return invalid("search", "give exactly one of search and recommend")
	}
	_, set, err := rules.ParseFile([]byte(*b.Rules))
	if err != nil {
		return invalid("rules", "%s", err)
	}
	ctx, id := c.UserContext(), requestIDOf(c)
	// answer runs the request with the live rules, or with set.
	var answer func(dry bool) (engine.Result, error)
	if b.Search != nil {
		req, err := decodeSearch(b.Search, s.lim)
		if err != nil {
			return prefixed("search", err)
		}
		req.RequestID, req.Explain = id, true
		answer = func(dry bool) (engine.Result, error) {
			if dry {
				req.DryRules = set
			}
			return s.eng.Search(ctx, req)
		}
	} else {
		req, err := decodeRecommend(b.Recommend, s.lim)
		if err != nil {
			return prefixed("recommend", err)
		}
		req.RequestID, req.Explain = id, true
		answer = func(dry bool) (engine.Result, error) {
			if dry {
				req.DryRules = set
			}
			return s.eng.Recommend(ctx, req)
		}
	}
	live, err := answer(false)
	if err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	dry, err := answer(true)
	if err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	live, dry = finish(live, id), finish(dry, id)
	return c.JSON(dryRunResult{Live: live, Dry: dry, Diff: diffLists(live.Items, dry.Items)})
}

// prefixed moves a nested request's field error under its key.
func prefixed(key string, err error) error {
	var re *requestError
	if errors.As(err, &re) && re.field != "" {
		cp := *re
		cp.field = key + "." + re.field
		return &cp
	}
	return err
}

func diffLists(live, dry []engine.Hit) dryRunDiff {
	d := dryRunDiff{Added: []string{}, Removed: []string{}, Moved: []moved{}}
	at := make(map[string]int, len(live))
	for i, h := range live {
		at[h.ID] = i
	}
	inDry := make(map[string]bool, len(dry))
	for i, h := range dry {
		inDry[h.ID] = true
		j, ok := at[h.ID]
		switch {
		case !ok:
			d.Added = append(d.Added, h.ID)
		case j != i:
			d.Moved = append(d.Moved, moved{ID: h.ID, From: j + 1, To: i + 1})
		}
	}
	for _, h := range live {
		if !inDry[h.ID] {
			d.Removed = append(d.Removed, h.ID)
		}
	}
	return d
}
