// Package deploy holds the deployment files (Dockerfile, compose,
// Kubernetes manifests, systemd units); its test checks them against the
// server they deploy.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/recsys-dev/recsys/config"
)

type container struct {
	Name  string   `yaml:"name"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	Lifecycle      struct {
		PreStop any `yaml:"preStop"`
	} `yaml:"lifecycle"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type object struct {
	Kind     string                `yaml:"kind"`
	Metadata struct{ Name string } `yaml:"metadata"`
	Data     map[string]string     `yaml:"data"`
	Spec     yaml.Node             `yaml:"spec"`
}

func readObjects(t *testing.T, path string) []object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, o)
	}
}

// TestKubernetesManifests: every object parses; the Deployment's probes
// hit the server's health routes on the port its address configures; its
// environment overrides are keys the configuration has; the drain is
// longer than serve's shutdown; the CronJob cannot run twice at once.
func TestKubernetesManifests(t *testing.T) {
	objs := readObjects(t, "kubernetes/recsys.yaml")
	kinds := map[string]*object{}
	for i := range objs {
		kinds[objs[i].Kind] = &objs[i]
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "CronJob"} {
		if _, ok := kinds[k]; !ok {
			t.Fatalf("no %s", k)
		}
	}
	env := kinds["ConfigMap"].Data
	var pairs []string
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	// The overrides must make a configuration serve accepts, with an
	// admin key for the public admin address.
	pairs = append(pairs, "RECSYS_BUILD_CATALOG=/catalog/catalog.jsonl")
	cfgText, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(cfgText, pairs)
	if err != nil {
		t.Fatalf("the ConfigMap's overrides do not make a valid configuration: %v", err)
	}
	var dep struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	if err := kinds["Deployment"].Spec.Decode(&dep); err != nil {
		t.Fatal(err)
	}
	c := dep.Template.Spec.Containers[0]
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if !strings.HasSuffix(cfg.Server.Addr, ":"+strconv.Itoa(ports["http"])) || !strings.HasSuffix(cfg.Server.AdminAddr, ":"+strconv.Itoa(ports["admin"])) {
		t.Errorf("container ports %v do not match server.addr %s and admin_addr %s", ports, cfg.Server.Addr, cfg.Server.AdminAddr)
	}
	for _, p := range []struct {
		name, want string
		probe      *probe
	}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}, {"startup", "/healthz", c.StartupProbe}} {
		if p.probe == nil {
			t.Errorf("no %s probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.want || p.probe.HTTPGet.Port != "http" {
			t.Errorf("%s probe %+v, want %s on the http port", p.name, p.probe.HTTPGet, p.want)
		}
	}
	if c.Lifecycle.PreStop == nil || dep.Template.Spec.TerminationGracePeriodSeconds < 20 {
		t.Errorf("no graceful drain: preStop %v, grace %ds (serve drains for 10 s)", c.Lifecycle.PreStop, dep.Template.Spec.TerminationGracePeriodSeconds)
	}
	var cron struct {
		ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
	}
	if err := kinds["CronJob"].Spec.Decode(&cron); err != nil || cron.ConcurrencyPolicy != "Forbid" {
		t.Errorf("CronJob concurrencyPolicy %q (%v), want Forbid: two builders must not publish at once", cron.ConcurrencyPolicy, err)
	}
}

// TestCompose parses the compose file and checks it wires the server to
// the Redis and Kafka it starts.
func TestCompose(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	env := doc.Services["recsys"].Environment
	if _, ok := doc.Services["redis"]; !ok || env["RECSYS_REDIS_ADDR"] != "redis:6379" {
		t.Errorf("recsys is not wired to the compose Redis: %v", env)
	}
	if _, ok := doc.Services["kafka"]; !ok || env["RECSYS_KAFKA_BROKERS"] != "kafka:9092" {
		t.Errorf("recsys is not wired to the compose Kafka: %v", env)
	}
}

// TestSystemdUnits runs systemd-analyze verify on the units, with their
// binary paths pointed at an executable that exists here.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var units []string
	for _, name := range []string{"recsys.service", "recsys-nightly.service", "recsys-nightly.timer"} {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/opt/recsys/bin/recsys", exe)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, filepath.Join(dir, name))
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
