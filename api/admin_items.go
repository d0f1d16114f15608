package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/catalog/itemlog"
	"github.com/recsys-dev/recsys/engine"
)

// Admin item routes: the live catalog.
const (
	routeAdminItem  = "/admin/items/:id"
	routeAdminItems = "/admin/items"
)

// MaxItemBatch bounds the operations of one POST /admin/items.
const MaxItemBatch = 1000

// CodeLiveCatalogOff is the error code of an item route while
// kafka.items_topic is empty.
const CodeLiveCatalogOff = "live_catalog_off"

// ItemsDeps are the live catalog's operations behind the item routes.
type ItemsDeps struct {
	// Write appends changes to the items topic and returns their offsets.
	Write func(ctx context.Context, changes []itemlog.Change) ([]int64, error)
	// End is the topic's end offset: a partial update first waits until
	// this replica applied everything written before it.
	End func(ctx context.Context) (int64, error)
	// Get is the live version of an item; Applied the offset after the
	// last change this replica applied.
	Get     func(id string) (engine.LiveItem, bool)
	Applied func() int64
	Now     func() time.Time
	// CatchUp bounds the wait for this replica to apply the changes a
	// partial update or ?wait=true needs (0 means 5s).
	CatchUp time.Duration
}

type itemResult struct {
	ID     string `json:"id"`
	Op     string `json:"op"`
	Offset int64  `json:"offset"`
	// Applied says the change is live on the replica that answered
	// (requests with ?wait=true).
	Applied bool `json:"applied,omitempty"`
}

type itemsResult struct {
	Results []itemResult `json:"results"`
}

// itemOp is one operation of a batch.
type itemOp struct {
	Op     string          `json:"op"` // put, patch or delete
	ID     string          `json:"id"`
	Item   json.RawMessage `json:"item"`   // put
	Fields json.RawMessage `json:"fields"` // patch
}

func (a *Admin) itemRoutes() {
	a.app.Get(routeAdminItem, a.getItem)
	a.app.Put(routeAdminItem, a.putItem)
	a.app.Patch(routeAdminItem, a.patchItem)
	a.app.Delete(routeAdminItem, a.deleteItem)
	a.app.Post(routeAdminItems, a.batchItems)
}

func (a *Admin) items() (*ItemsDeps, error) {
	if a.deps.Items == nil || a.deps.Items.Write == nil {
		return nil, &requestError{status: http.StatusConflict, code: CodeLiveCatalogOff, field: "kafka.items_topic",
			msg: "the live catalog is off (kafka.items_topic is empty): change items through a rebuild"}
	}
	return a.deps.Items, nil
}

func (a *Admin) getItem(c *fiber.Ctx) error {
	d, err := a.items()
	if err != nil {
		return err
	}
	li, ok := d.Get(itemID(c))
	if !ok {
		return &requestError{status: http.StatusNotFound, code: CodeNotFound, field: "id", msg: "no such item"}
	}
	return c.JSON(li)
}

func (a *Admin) putItem(c *fiber.Ctx) error {
	return a.runOps(c, []itemOp{{Op: "put", ID: itemID(c), Item: c.Body()}}, "item")
}

func (a *Admin) patchItem(c *fiber.Ctx) error {
	return a.runOps(c, []itemOp{{Op: "patch", ID: itemID(c), Fields: c.Body()}}, "fields")
}

func (a *Admin) deleteItem(c *fiber.Ctx) error {
	return a.runOps(c, []itemOp{{Op: "delete", ID: itemID(c)}}, "id")
}

// itemID is the route's item id, copied: fiber's parameters alias the
// request buffer, which the next request on the connection overwrites, and
// a change's id outlives the handler (in the live catalog, in a test's
// fake of it).
func itemID(c *fiber.Ctx) string { return strings.Clone(c.Params("id")) }

func (a *Admin) batchItems(c *fiber.Ctx) error {
	var body struct {
		Ops []itemOp `json:"ops"`
	}
	if err := decodeStrict(c.Body(), &body); err != nil {
		return err
	}
	if len(body.Ops) == 0 || len(body.Ops) > MaxItemBatch {
		return invalid("ops", "must hold 1..%d operations, got %d", MaxItemBatch, len(body.Ops))
	}
	return a.runOps(c, body.Ops, "")
}

// runOps validates every operation (a bad one refuses the whole request,
// naming it), resolves partial updates against the live items, writes the
// changes in order and answers their offsets. single names the body's
// field for a one-item route ("" for a batch, whose fields are
// ops[i].<field>).
func (a *Admin) runOps(c *fiber.Ctx, ops []itemOp, single string) error {
	d, err := a.items()
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	wait := c.QueryBool("wait")
	needCatchUp := false
	for _, op := range ops {
		needCatchUp = needCatchUp || op.Op == "patch"
	}
	if needCatchUp {
		// A partial update is resolved against the live item: first apply
		// whatever was written before it, so it does not undo a change.
		end, err := d.End(ctx)
		if err != nil {
			return &unavailableError{what: "items topic", err: err}
		}
		if err := a.waitApplied(ctx, d, end-1); err != nil {
			return err
		}
	}
	changes := make([]itemlog.Change, len(ops))
	now := d.now()
	pending := map[string]catalog.Item{} // items this request puts before patching them
	deleted := map[string]bool{}
	for i, op := range ops {
		field := func(f string) string {
			if single != "" {
				if f == "" {
					return single
				}
				return f
			}
			if f == "" {
				return fmt.Sprintf("ops[%d]", i)
			}
			return fmt.Sprintf("ops[%d].%s", i, f)
		}
		ch, err := a.resolve(d, op, pending, deleted, field, single != "")
		if err != nil {
			return err
		}
		ch.At = now
		changes[i] = ch
	}
	offs, err := d.Write(ctx, changes)
	if err != nil {
		return &unavailableError{what: "items topic", err: err}
	}
	res := itemsResult{Results: make([]itemResult, len(changes))}
	for i, ch := range changes {
		res.Results[i] = itemResult{ID: ch.ID, Op: ch.Op, Offset: offs[i]}
	}
	if wait {
		if err := a.waitApplied(ctx, d, offs[len(offs)-1]); err != nil {
			return err
		}
		for i := range res.Results {
			res.Results[i].Applied = true
		}
	}
	return c.JSON(res)
}

// resolve turns one operation into the change the topic records: a whole
// item or a delete.
func (a *Admin) resolve(d *ItemsDeps, op itemOp, pending map[string]catalog.Item, deleted map[string]bool,
	field func(string) string, single bool) (itemlog.Change, error) {
	if p := catalog.IDProblem(op.ID); p != "" {
		return itemlog.Change{}, invalid(idField(field, single), "%s", p)
	}
	current := func() (catalog.Item, bool) {
		if it, ok := pending[op.ID]; ok {
			return it, true
		}
		if deleted[op.ID] {
			return catalog.Item{}, false
		}
		li, ok := d.Get(op.ID)
		if !ok || li.Deleted {
			return catalog.Item{}, false
		}
		return li.Item, true
	}
	switch op.Op {
	case "put":
		it, err := parseWithID(op.Item, op.ID)
		if err != nil {
			return itemlog.Change{}, itemError(err, field("item"))
		}
		pending[op.ID] = it
		delete(deleted, op.ID)
		return itemlog.Change{Op: itemlog.OpUpsert, ID: op.ID, Item: &it, Source: "put"}, nil
	case "patch":
		cur, ok := current()
		if !ok {
			return itemlog.Change{}, &requestError{status: http.StatusNotFound, code: CodeNotFound, field: idField(field, single), msg: "no such item to patch"}
		}
		it, err := catalog.Patch(cur, op.Fields)
		if err != nil {
			return itemlog.Change{}, itemError(err, field("fields"))
		}
		pending[op.ID] = it
		return itemlog.Change{Op: itemlog.OpUpsert, ID: op.ID, Item: &it, Source: "patch"}, nil
	case "delete":
		if _, ok := current(); !ok {
			return itemlog.Change{}, &requestError{status: http.StatusNotFound, code: CodeNotFound, field: idField(field, single), msg: "no such item to delete"}
		}
		delete(pending, op.ID)
		deleted[op.ID] = true
		return itemlog.Change{Op: itemlog.OpDelete, ID: op.ID, Source: "delete"}, nil
	}
	return itemlog.Change{}, invalid(field("op"), "must be put, patch or delete, got %q", op.Op)
}

func idField(field func(string) string, single bool) string {
	if single {
		return "id"
	}
	return field("id")
}

// parseWithID parses a whole item; its id may be left out (the path names
// it) but must otherwise match.
func parseWithID(body []byte, id string) (catalog.Item, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return catalog.Item{}, &catalog.ValidationError{Problems: []catalog.Problem{{Line: 1, Reason: "must be a JSON object (an item as a catalog row)"}}}
	}
	if raw, ok := fields["id"]; ok {
		var got string
		if json.Unmarshal(raw, &got) != nil || got != id {
			return catalog.Item{}, &catalog.ValidationError{Problems: []catalog.Problem{{Line: 1, Field: "id", Reason: "differs from the id in the path"}}}
		}
	}
	fields["id"], _ = json.Marshal(id)
	b, _ := json.Marshal(fields)
	return catalog.ParseItem(b)
}

// itemError is a catalog validation error as a 400 naming the first bad
// field under prefix (e.g. item.price, ops[3].fields.tags).
func itemError(err error, prefix string) error {
	var ve *catalog.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) == 0 {
		return invalid(prefix, "%v", err)
	}
	p := ve.Problems[0]
	f := prefix
	if p.Field != "" {
		f = prefix + "." + p.Field
	}
	return invalid(f, "%s", p.Reason)
}

// waitApplied waits until this replica applied offset off (the live
// catalog then holds it).
func (a *Admin) waitApplied(ctx context.Context, d *ItemsDeps, off int64) error {
	limit := d.CatchUp
	if limit <= 0 {
		limit = 5 * time.Second
	}
	deadline := time.Now().Add(limit)
	for d.Applied() <= off {
		if time.Now().After(deadline) {
			return &unavailableError{what: "live catalog", err: fmt.Errorf("this replica has not applied offset %d within %s (at %d)", off, limit, d.Applied())}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

func (d *ItemsDeps) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}
