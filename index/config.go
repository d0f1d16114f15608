package index

import "fmt"

// Backend names.
const (
	BackendExact = "exact"
)

var backends = []string{BackendExact}

// Config selects the index implementation.
type Config struct {
	// Backend is the search structure: "exact" (brute force; exact top-k,
	// linear in the catalog) is the only one so far.
	Backend string `yaml:"backend"`
}

// Validate reports a bad field, named by its key.
func (c Config) Validate() error {
	for _, b := range backends {
		if c.Backend == b {
			return nil
		}
	}
	if c.Backend == "" {
		return fmt.Errorf("backend: must be set (one of %q)", backends)
	}
	return fmt.Errorf("backend: unknown backend %q (want one of %q)", c.Backend, backends)
}
