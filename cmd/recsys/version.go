package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version is set at link time (make builds with -X main.version=$(git
// describe)); without it the module's build info says what it can.
var version = ""

// buildInfo is what the binary knows about its own build.
type buildInfo struct {
	Version, Revision, Time, Go string
	Modified                    bool
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Go: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

func (b buildInfo) String() string {
	s := "recsys " + b.Version
	if b.Revision != "" {
		s += " (" + b.Revision
		if b.Modified {
			s += ", modified"
		}
		if b.Time != "" {
			s += ", " + b.Time
		}
		s += ")"
	}
	return s + " " + b.Go
}

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("version", "version", stdout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, readBuildInfo())
	return nil
}

// buildInfoGauge is recsys_build_info: 1, labelled with the build, so a
// dashboard can tell which version each replica runs.
func buildInfoGauge() prometheus.Collector {
	b := readBuildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "recsys_build_info",
		Help:        "The running binary's version, VCS revision and Go version (value 1).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.Go},
	})
	g.Set(1)
	return g
}
