package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/bundle"
)

func TestRollback(t *testing.T) {
	root := filepath.Join(t.TempDir(), "bundles")
	t.Setenv("RECSYS_BUNDLES_DIR", root)
	for _, v := range []string{"v1", "v2", "v3"} {
		s, err := bundle.Create(root, v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.Path("items.jsonl"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Publish(&bundle.Manifest{Items: 1, Dim: 4, CreatedAt: time.Unix(0, 0).UTC()}, true); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := dispatch(context.Background(), append([]string{"rollback", "--config", "../../config.yaml"}, args...), &out, io.Discard)
		return out.String(), err
	}
	current := func() string {
		v, err := bundle.Current(root)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	if out, err := run("--list"); err != nil || out != "  v1\n  v2\n* v3\n" || current() != "v3" {
		t.Fatalf("--list = %q, %v; current %s", out, err, current())
	}
	if out, err := run(); err != nil || !strings.Contains(out, "v3 -> v2") || current() != "v2" {
		t.Fatalf("rollback = %q, %v; current %s, want v2", out, err, current())
	}
	if _, err := run("--to", "v3"); err != nil || current() != "v3" {
		t.Fatalf("roll forward: %v, current %s", err, current())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "v9"}, "not a published version"},
		{[]string{"--to", "v3"}, "already current"},
	} {
		if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rollback %v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// A damaged target is refused and CURRENT stays.
	if err := os.WriteFile(filepath.Join(root, "v1", "items.jsonl"), []byte("tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("--to", "v1"); err == nil || !strings.Contains(err.Error(), "refusing v1") || current() != "v3" {
		t.Fatalf("damaged target: %v; current %s, want v3 kept", err, current())
	}
	if _, err := run("--to", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(); err == nil || current() != "v2" {
		t.Fatalf("from v2 the only older version is damaged: %v, current %s", err, current())
	}
}
