package world

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/internal/atomicfile"
)

// File names Write produces.
const (
	CatalogFile = "catalog.jsonl"
	UsersFile   = "users.jsonl"
)

// progressEvery is how many items pass between progress lines.
const progressEvery = 100_000

// Write generates the world for cfg into dir as catalog.jsonl and
// users.jsonl. Each file is written under a temporary name and renamed, so
// a reader never sees a half-written file. Progress lines go to progress
// (nil for none).
func Write(dir string, cfg Config, progress io.Writer) error {
	w, err := New(cfg)
	if err != nil {
		return err
	}
	if progress == nil {
		progress = io.Discard
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write world: %w", err)
	}
	err = atomicfile.Write(filepath.Join(dir, CatalogFile), func(out io.Writer) error {
		jw := catalog.NewJSONLWriter(out)
		for i := range cfg.Items {
			if err := jw.Write(w.Item(i)); err != nil {
				return err
			}
			if n := i + 1; n%progressEvery == 0 || n == cfg.Items {
				fmt.Fprintf(progress, "world: catalog %d/%d items\n", n, cfg.Items)
			}
		}
		return jw.Flush()
	})
	if err != nil {
		return err
	}
	err = atomicfile.Write(filepath.Join(dir, UsersFile), func(out io.Writer) error {
		bw := bufio.NewWriterSize(out, 256<<10)
		enc := json.NewEncoder(bw)
		for i := range cfg.Users {
			if err := enc.Encode(w.User(i)); err != nil {
				return fmt.Errorf("user %d: %w", i, err)
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(progress, "world: %d users\n", cfg.Users)
		return nil
	})
	return err
}

// ReadUsers reads a users.jsonl written by Write. Unknown fields and
// missing ids are errors: the file is the ground truth of experiments.
func ReadUsers(path string) ([]User, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	var users []User
	for line, b := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var u User
		if err := dec.Decode(&u); err != nil {
			return nil, fmt.Errorf("read users %s line %d: %w", path, line+1, err)
		}
		if u.ID == "" {
			return nil, fmt.Errorf("read users %s line %d: %w", path, line+1, errors.New("missing id"))
		}
		users = append(users, u)
	}
	return users, nil
}
