package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/world"
)

// TestTrainEmbed trains on a generated catalog's own pairs and checks the
// written model is one the encoder (and so `build` and `serve`) accepts.
func TestTrainEmbed(t *testing.T) {
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	dir := t.TempDir()
	if err := world.Write(filepath.Join(dir, "world"), world.Config{Items: 1000, Users: 10, Seed: 3}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model.onnx")
	var stdout bytes.Buffer
	err = dispatch(context.Background(), []string{"train", "embed", "--config", "../../config.yaml",
		"--catalog", filepath.Join(dir, "world", "catalog.jsonl"), "--out", out, "--epochs", "2"}, &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"training on 1000 title/description pairs", "epoch 2: loss", "wrote " + out} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
	enc, err := embed.Open(embed.EncoderConfig{ModelPath: out}, nil)
	if err != nil {
		t.Fatalf("trained model refused: %v", err)
	}
	defer enc.Close()
	if enc.Dim() != 128 {
		t.Errorf("dim = %d, want the configured 128", enc.Dim())
	}

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"train", "embed", "--config", "../../config.yaml"},
			{"train", "embed", "--config", "../../config.yaml", "--out", out, "--batch", "1"},
			{"train", "nope"},
		} {
			if err := dispatch(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Errorf("%v: accepted", args)
			}
		}
	})
}
