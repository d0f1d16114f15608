package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	t.Run("replaces", func(t *testing.T) {
		if err := WriteBytes(path, []byte("new")); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != "new" {
			t.Fatalf("content %q", b)
		}
	})
	t.Run("failure keeps the old file and no temp", func(t *testing.T) {
		boom := errors.New("boom")
		err := Write(path, func(w io.Writer) error {
			w.Write([]byte("partial"))
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "new" {
			t.Fatalf("content %q after a failed write", b)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("left behind: %v", entries)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		if err := WriteBytes(filepath.Join(dir, "no", "f"), nil); err == nil {
			t.Fatal("write into a missing directory succeeded")
		}
	})
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatalf("SyncDir of a directory: %v", err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("SyncDir of a missing directory reported success")
	}
}
