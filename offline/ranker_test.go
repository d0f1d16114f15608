package offline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/internal/ort/orttest"
	"github.com/recsys-dev/recsys/rank"
)

func TestBuildRanker(t *testing.T) {
	orttest.Init(t)
	cfg := rank.DefaultConfig()
	features := cfg.Names()
	dir := t.TempDir()
	write := func(name string, ens *rank.Ensemble) string {
		b, err := rank.BuildTreeModel(ens)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	leaf := rank.Tree{Nodes: []rank.TreeNode{{Feature: -1, Value: 1}}}
	matching := write("ok.onnx", &rank.Ensemble{Features: features, Trees: []rank.Tree{leaf}})
	other := write("other.onnx", &rank.Ensemble{Features: features[:2], Trees: []rank.Tree{leaf}})
	tests := []struct {
		name   string
		ranker string
		kind   string
		err    string
	}{
		{"no key builds linear", "", "linear", ""},
		{"absent file builds linear", filepath.Join(dir, "none.onnx"), "linear", ""},
		{"promoted model is used", matching, rank.KindTrees, ""},
		{"promoted model with other features fails the build", other, "", "do not match configured features"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := buildRanker(BuildOptions{Rank: cfg, Ranker: tt.ranker}, features)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.kind != tt.kind || len(m.data) == 0 {
				t.Fatalf("kind %q (%d bytes), want %q", m.kind, len(m.data), tt.kind)
			}
		})
	}
}
