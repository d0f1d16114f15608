package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/catalog/itemlog"
	"github.com/recsys-dev/recsys/engine"
)

// fakeItems is a live catalog: Write appends to a log that Get reads
// from once "applied" (at once, unless hold is set).
type fakeItems struct {
	mu      sync.Mutex
	items   map[string]catalog.Item
	written []itemlog.Change
	applied int64
	err     error
}

func (f *fakeItems) deps() *ItemsDeps {
	return &ItemsDeps{
		Write: func(_ context.Context, cs []itemlog.Change) ([]int64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.err != nil {
				return nil, f.err
			}
			var offs []int64
			for _, c := range cs {
				offs = append(offs, int64(len(f.written)))
				f.written = append(f.written, c)
				if c.Op == itemlog.OpDelete {
					delete(f.items, c.ID)
				} else {
					f.items[c.ID] = *c.Item
				}
			}
			f.applied = int64(len(f.written))
			return offs, nil
		},
		End: func(context.Context) (int64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return int64(len(f.written)), nil
		},
		Get: func(id string) (engine.LiveItem, bool) {
			f.mu.Lock()
			defer f.mu.Unlock()
			it, ok := f.items[id]
			return engine.LiveItem{Item: it, Source: "bundle"}, ok
		},
		Applied: func() int64 {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.applied
		},
		CatchUp: 100 * time.Millisecond,
	}
}

func adminWith(t *testing.T, items *ItemsDeps) *Admin {
	t.Helper()
	a, err := NewAdmin(AdminDeps{Reload: func(context.Context) (string, string, error) { return "", "", nil },
		Live: func() string { return "b1" }, Items: items})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func adminCall(t *testing.T, a *Admin, method, path, body string) (int, errorDetail, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.App().Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	var eb errorBody
	var ok map[string]any
	if resp.StatusCode/100 == 2 {
		json.Unmarshal(b, &ok)
	} else if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, eb.Error, ok
}

const wine = `{"title":"Red wine","price":9,"created_at":"2026-01-02T00:00:00Z"}`

func TestAdmin_Items(t *testing.T) {
	f := &fakeItems{items: map[string]catalog.Item{}}
	a := adminWith(t, f.deps())

	code, _, body := adminCall(t, a, http.MethodPut, "/admin/items/w1", wine)
	if code != http.StatusOK || len(f.written) != 1 || f.written[0].Op != itemlog.OpUpsert || f.written[0].Item.ID != "w1" || f.written[0].Source != "put" {
		t.Fatalf("put: %d %v, written %+v", code, body, f.written)
	}
	code, _, _ = adminCall(t, a, http.MethodPatch, "/admin/items/w1?wait=true", `{"available":false,"price":7}`)
	if got := f.written[1].Item; code != http.StatusOK || got.Available || got.Price != 7 || got.Title != "Red wine" || f.written[1].Source != "patch" {
		t.Fatalf("patch: %d, wrote %+v", code, got)
	}
	if code, _, body := adminCall(t, a, http.MethodGet, "/admin/items/w1", ""); code != http.StatusOK || body["source"] != "bundle" {
		t.Errorf("get: %d %v", code, body)
	}

	// Each bad request names its field and writes nothing.
	n := len(f.written)
	for _, tc := range []struct {
		method, path, body string
		status             int
		field              string
	}{
		{http.MethodPut, "/admin/items/w2", `{"title":"x","price":-1,"created_at":"2026-01-02T00:00:00Z"}`, 400, "item.price"},
		{http.MethodPut, "/admin/items/w2", `{"id":"other","title":"x","created_at":"2026-01-02T00:00:00Z"}`, 400, "item.id"},
		{http.MethodPut, "/admin/items/w2", `[]`, 400, "item"},
		{http.MethodPatch, "/admin/items/w1", `{"price":"cheap"}`, 400, "fields.price"},
		{http.MethodPatch, "/admin/items/w1", `{"id":"w9"}`, 400, "fields.id"},
		{http.MethodPatch, "/admin/items/nope", `{"price":1}`, 404, "id"},
		{http.MethodDelete, "/admin/items/nope", ``, 404, "id"},
		{http.MethodGet, "/admin/items/nope", ``, 404, "id"},
		{http.MethodPost, "/admin/items", `{"ops":[]}`, 400, "ops"},
		{http.MethodPost, "/admin/items", `{"ops":[{"op":"put","id":"a","item":` + wine + `},{"op":"patch","id":"a","fields":{"price":-2}}]}`, 400, "ops[1].fields.price"},
		{http.MethodPost, "/admin/items", `{"ops":[{"op":"rename","id":"a"}]}`, 400, "ops[0].op"},
		{http.MethodPost, "/admin/items", `{"ops":[{"op":"delete","id":""}]}`, 400, "ops[0].id"},
	} {
		code, d, _ := adminCall(t, a, tc.method, tc.path, tc.body)
		if code != tc.status || d.Field != tc.field {
			t.Errorf("%s %s %s: %d field %q (%s), want %d field %q", tc.method, tc.path, tc.body, code, d.Field, d.Message, tc.status, tc.field)
		}
	}
	if len(f.written) != n {
		t.Fatalf("refused requests wrote %d changes", len(f.written)-n)
	}

	// A batch sees its own earlier operations: put, patch, delete, put.
	code, _, body = adminCall(t, a, http.MethodPost, "/admin/items", `{"ops":[`+
		`{"op":"put","id":"b","item":`+wine+`},{"op":"patch","id":"b","fields":{"tags":["dry"]}},`+
		`{"op":"delete","id":"b"},{"op":"put","id":"b","item":`+wine+`},{"op":"delete","id":"w1"}]}`)
	if code != http.StatusOK || len(body["results"].([]any)) != 5 {
		t.Fatalf("batch: %d %v", code, body)
	}
	if got := f.written[n+1].Item.Tags; len(got) != 1 || got[0] != "dry" {
		t.Errorf("patch in a batch after its put wrote tags %v", got)
	}

	// The topic down: 503, nothing claimed.
	f.err = errors.New("broker down")
	if code, d, _ := adminCall(t, a, http.MethodPut, "/admin/items/c", wine); code != http.StatusServiceUnavailable || d.Code != CodeUnavailable {
		t.Errorf("write failure: %d %+v", code, d)
	}
}

func TestAdmin_ItemsWaitTimesOut(t *testing.T) {
	f := &fakeItems{items: map[string]catalog.Item{}}
	d := f.deps()
	write := d.Write
	d.Write = func(ctx context.Context, cs []itemlog.Change) ([]int64, error) {
		offs, err := write(ctx, cs)
		f.mu.Lock()
		f.applied = 0 // this replica never applies it
		f.mu.Unlock()
		return offs, err
	}
	a := adminWith(t, d)
	if code, d, _ := adminCall(t, a, http.MethodPut, "/admin/items/w1?wait=true", wine); code != http.StatusServiceUnavailable || !strings.Contains(d.Message, "live catalog") {
		t.Errorf("wait past the catch-up bound: %d %+v", code, d)
	}
}

func TestAdmin_ItemsOff(t *testing.T) {
	a := adminWith(t, nil)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		if code, d, _ := adminCall(t, a, m, "/admin/items/x", wine); code != http.StatusConflict || d.Code != CodeLiveCatalogOff || d.Field != "kafka.items_topic" {
			t.Errorf("%s with the live catalog off: %d %+v", m, code, d)
		}
	}
}
