package bundle

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func publish(t *testing.T, root, version string, files map[string]string) string {
	t.Helper()
	s, err := Create(root, version)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(s.Path(name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := s.Publish(&Manifest{Items: 2, Dim: 4, CreatedAt: time.Unix(0, 0).UTC()}, true)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestStage_Publish(t *testing.T) {
	root := t.TempDir()
	dir := publish(t, root, "v1", map[string]string{"a.bin": "hello", "b.json": "{}"})
	m, err := Open(dir)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if m.Version != "v1" || len(m.Files) != 2 {
		t.Fatalf("manifest = %+v", m)
	}
	if f, ok := m.File("a.bin"); !ok || f.Size != 5 {
		t.Fatalf("a.bin entry = %+v, %v", f, ok)
	}
	cur, err := Current(root)
	if err != nil || cur != "v1" {
		t.Fatalf("current = %q, %v", cur, err)
	}
	if _, err := os.Stat(filepath.Join(root, stagePrefix+"v1")); !os.IsNotExist(err) {
		t.Fatalf("staging dir left behind: %v", err)
	}
}

func TestOpen_Refuses(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(dir string)
		want    string
	}{
		{"bit flip", func(dir string) { os.WriteFile(filepath.Join(dir, "a.bin"), []byte("hellp"), 0o644) }, "checksum mismatch"},
		{"truncated", func(dir string) { os.WriteFile(filepath.Join(dir, "a.bin"), []byte("hel"), 0o644) }, "3 bytes, manifest says 5"},
		{"missing file", func(dir string) { os.Remove(filepath.Join(dir, "a.bin")) }, "no such file"},
		{"empty manifest", func(dir string) { os.WriteFile(filepath.Join(dir, ManifestName), nil, 0o644) }, "decode manifest"},
		{"future format", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, ManifestName))
			os.WriteFile(filepath.Join(dir, ManifestName), []byte(strings.Replace(string(b), `"format": 1`, `"format": 99`, 1)), 0o644)
		}, "format 99"},
		{"empty version", edit(`"version": "v1"`, `"version": ""`), "version is empty"},
		{"zero items", edit(`"items": 2`, `"items": 0`), "items must be > 0"},
		{"zero dimension", edit(`"dim": 4`, `"dim": 0`), "dim must be > 0"},
		{"a default per feature", edit(`"feature_defaults": null`, `"feature_defaults": [1]`), "1 feature defaults for 0 features"},
		{"no files", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, ManifestName))
			var m map[string]any
			json.Unmarshal(b, &m)
			m["files"] = []any{}
			b, _ = json.Marshal(m)
			os.WriteFile(filepath.Join(dir, ManifestName), b, 0o644)
		}, "lists no files"},
		{"unsafe path", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, ManifestName))
			os.WriteFile(filepath.Join(dir, ManifestName), []byte(strings.Replace(string(b), `"name": "a.bin"`, `"name": "../a.bin"`, 1)), 0o644)
		}, "unsafe path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := publish(t, t.TempDir(), "v1", map[string]string{"a.bin": "hello"})
			tc.corrupt(dir)
			_, err := Open(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// edit replaces old by new in a published manifest.
func edit(old, new string) func(dir string) {
	return func(dir string) {
		path := filepath.Join(dir, ManifestName)
		b, _ := os.ReadFile(path)
		if !strings.Contains(string(b), old) {
			panic("manifest lacks " + old + ":\n" + string(b))
		}
		os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
	}
}

func TestPrune_UnreadableCurrent(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"v1", "v2", "v3"} {
		publish(t, root, v, map[string]string{"a": v})
	}
	// A CURRENT that cannot be read may name any of them: prune nothing.
	if err := os.WriteFile(filepath.Join(root, CurrentName), []byte("../escape\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := Prune(root, 1)
	if err == nil || len(removed) != 0 {
		t.Fatalf("Prune with an unreadable CURRENT = %v, %v; want an error and nothing removed", removed, err)
	}
	if got, _ := Versions(root); len(got) != 3 {
		t.Fatalf("versions left %v", got)
	}
}

func TestCurrent_NoBundle(t *testing.T) {
	_, err := Current(t.TempDir())
	if !errors.Is(err, ErrNoBundle) {
		t.Fatalf("err = %v, want ErrNoBundle", err)
	}
}

func TestPrune_KeepsCurrent(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		publish(t, root, v, map[string]string{"a": v})
	}
	if err := SetCurrent(root, "v1"); err != nil { // rolled back to the oldest
		t.Fatal(err)
	}
	removed, err := Prune(root, 2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(removed, ",") != "v2" {
		t.Fatalf("removed %v, want [v2]", removed)
	}
	got, _ := Versions(root)
	if strings.Join(got, ",") != "v1,v3,v4" {
		t.Fatalf("left %v", got)
	}
}

func TestCreate_ExistingVersion(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "v1", map[string]string{"a": "x"})
	if _, err := Create(root, "v1"); err == nil {
		t.Fatal("Create over a published version succeeded")
	}
}
