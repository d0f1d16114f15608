package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/recsys-dev/recsys/internal/atomicfile"
)

// CurrentName is the file in the bundles root naming the live version.
const CurrentName = "CURRENT"

// ErrNoBundle means the root holds no published bundle yet.
var ErrNoBundle = errors.New("no bundle published")

const stagePrefix = ".stage-"

// NewVersion returns a version name that sorts in creation order.
func NewVersion(now time.Time) string {
	return "v" + now.UTC().Format("20060102-150405.000000")
}

// Stage is a bundle being written. Files go into Dir; Publish makes it live.
type Stage struct {
	Root    string
	Version string
	Dir     string
}

// Create starts a bundle in a staging directory under root.
func Create(root, version string) (*Stage, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create bundle root %s: %w", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, version)); err == nil {
		return nil, fmt.Errorf("create bundle %s: version already exists", version)
	}
	dir := filepath.Join(root, stagePrefix+version)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("create bundle %s: %w", version, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create bundle %s: %w", version, err)
	}
	return &Stage{Root: root, Version: version, Dir: dir}, nil
}

// Path is where a file named name is written inside the stage.
func (s *Stage) Path(name string) string { return filepath.Join(s.Dir, name) }

// Abort removes the staging directory; the live bundle is untouched.
func (s *Stage) Abort() error { return os.RemoveAll(s.Dir) }

// Publish checksums every staged file into m.Files, writes the manifest,
// renames the directory into place and, if makeCurrent, points CURRENT at
// it. Each step is durable before the next, so a crash leaves either the
// old CURRENT or a complete new bundle.
func (s *Stage) Publish(m *Manifest, makeCurrent bool) (string, error) {
	m.Format = FormatVersion
	m.Version = s.Version
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return "", fmt.Errorf("publish bundle %s: %w", s.Version, err)
	}
	m.Files = m.Files[:0]
	for _, e := range entries {
		if e.IsDir() || e.Name() == ManifestName {
			continue
		}
		f, err := hashFile(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			return "", fmt.Errorf("publish bundle %s: %w", s.Version, err)
		}
		m.Files = append(m.Files, f)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", fmt.Errorf("publish bundle %s: %w", s.Version, err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(s.Dir, ManifestName), append(b, '\n')); err != nil {
		return "", fmt.Errorf("publish bundle %s: %w", s.Version, err)
	}
	final := filepath.Join(s.Root, s.Version)
	if err := os.Rename(s.Dir, final); err != nil {
		return "", fmt.Errorf("publish bundle %s: %w", s.Version, err)
	}
	if err := atomicfile.SyncDir(s.Root); err != nil {
		return "", fmt.Errorf("publish bundle %s: %w", s.Version, err)
	}
	if makeCurrent {
		if err := SetCurrent(s.Root, s.Version); err != nil {
			return "", err
		}
	}
	return final, nil
}

// SetCurrent atomically points CURRENT at version (also the rollback tool).
func SetCurrent(root, version string) error {
	if _, err := os.Stat(filepath.Join(root, version, ManifestName)); err != nil {
		return fmt.Errorf("set current %s: %w", version, err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(root, CurrentName), []byte(version+"\n")); err != nil {
		return fmt.Errorf("set current %s: %w", version, err)
	}
	return nil
}

// Current returns the version CURRENT names, or ErrNoBundle.
func Current(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, CurrentName))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", root, ErrNoBundle)
	}
	if err != nil {
		return "", fmt.Errorf("read current: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" || strings.ContainsAny(v, `/\`) || strings.HasPrefix(v, ".") {
		return "", fmt.Errorf("read current: invalid version %q", v)
	}
	return v, nil
}

// Versions lists the published versions under root, oldest first.
func Versions(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			if _, err := os.Stat(filepath.Join(root, e.Name(), ManifestName)); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Open reads and verifies the bundle in dir: the manifest must decode and
// every listed file must exist with its recorded size and checksum.
func Open(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	for _, want := range m.Files {
		if want.Name != filepath.Base(want.Name) || strings.HasPrefix(want.Name, ".") {
			return nil, fmt.Errorf("open bundle %s: manifest names an unsafe path %q", dir, want.Name)
		}
		got, err := hashFile(filepath.Join(dir, want.Name))
		if err != nil {
			return nil, fmt.Errorf("open bundle %s: %w", dir, err)
		}
		if got.Size != want.Size {
			return nil, fmt.Errorf("open bundle %s: %s is %d bytes, manifest says %d", dir, want.Name, got.Size, want.Size)
		}
		if got.SHA256 != want.SHA256 {
			return nil, fmt.Errorf("open bundle %s: %s checksum mismatch", dir, want.Name)
		}
	}
	return m, nil
}

// Prune removes published versions beyond the newest keep, never the current one.
// It returns the versions it removed.
func Prune(root string, keep int) ([]string, error) {
	versions, err := Versions(root)
	if err != nil || len(versions) <= keep {
		return nil, err
	}
	// Without knowing the live version nothing is safe to delete: it may
	// be an older one a rollback pointed CURRENT at.
	cur, err := Current(root)
	if err != nil {
		return nil, fmt.Errorf("prune bundles: %w", err)
	}
	var removed []string
	for _, v := range versions[:len(versions)-keep] {
		if v == cur {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, v)); err != nil {
			return removed, fmt.Errorf("prune bundle %s: %w", v, err)
		}
		removed = append(removed, v)
	}
	return removed, nil
}

func hashFile(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("hash %s: %w", path, err)
	}
	return File{Name: filepath.Base(path), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// SHA256File returns the hex SHA-256 of a file (used for catalog checksums).
func SHA256File(path string) (string, error) {
	f, err := hashFile(path)
	return f.SHA256, err
}
