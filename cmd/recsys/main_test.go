package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDispatch_Help(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := dispatch(context.Background(), []string{c.name, "--help"}, &out, io.Discard)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("err = %v, want flag.ErrHelp", err)
			}
			if !strings.Contains(out.String(), "usage: recsys "+c.name) {
				t.Fatalf("help output:\n%s", out.String())
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		err := dispatch(context.Background(), []string{"serv"}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `unknown subcommand "serv"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCheckConfig(t *testing.T) {
	shipped, err := os.ReadFile("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error; nil means success
	}{
		{"shipped config", string(shipped), nil},
		{"bad rule", "rules:\n  filters:\n    - name: kids\n      expr: item.price > usr.age\n",
			[]string{`"kids"`, "line 1, column 14", "usr"}},
		{"two bad rules", "rules:\n  filters:\n    - {name: a, expr: 'item.nope'}\n  business:\n    - {name: b, when: 'item.price >', action: boost, amount: 1}\n",
			[]string{`"a"`, `"b"`}},
		{"unknown key", "engine:\n  candidate: 5\n", []string{"line 2: engine.candidate: unknown key (did you mean engine.candidates?)"}},
		{"good rules file", "rules:\n  file: RULES\n", nil},
		{"public admin without an admin key", "server:\n  admin_addr: 0.0.0.0:8081\n", []string{"server.admin_addr: 0.0.0.0:8081 is not a loopback address"}},
		{"public admin with an admin key", "server:\n  admin_addr: 0.0.0.0:8081\n  auth:\n    keys:\n      - {name: ops, sha256: " + strings.Repeat("ab", 32) + ", scopes: [admin]}\n", nil},
		{"bad rules file", "rules:\n  file: BAD\n", []string{"bad.yaml", "business[0].max: must be > 0"}},
		{"missing rules file", "rules:\n  file: /nonexistent/rules.yaml\n", []string{"rules.file", "no such file"}},
		{"items topic is the events topic", "kafka:\n  items_topic: recsys.events\n", []string{"kafka.items_topic: must differ from topic"}},
		{"bad live share", "engine:\n  live:\n    rebuild_share: 0\n", []string{"engine.live.rebuild_share: must be in (0, 10]"}},
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("business:\n  - {name: p, action: pin, items: [x], position: 1}\n"), 0o644)
	os.WriteFile(bad, []byte("business:\n  - {name: c, action: cap, by: brand}\n"), 0o644)
	for i := range cases {
		cases[i].yaml = strings.NewReplacer("RULES", good, "BAD", bad).Replace(cases[i].yaml)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o644)
			var out bytes.Buffer
			err := dispatch(context.Background(), []string{"check-config", "--config", path}, &out, io.Discard)
			if tc.want == nil {
				if err != nil || !strings.Contains(out.String(), ": ok") {
					t.Fatalf("err = %v, out = %s", err, out.String())
				}
				return
			}
			if err == nil {
				t.Fatal("bad config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}
