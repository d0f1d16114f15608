package ort

import (
	"os"
	"path/filepath"
)

func writeFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte("x"), 0o644)
}

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }
