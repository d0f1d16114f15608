package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline/beir"
)

const evalSynopsis = "eval search --beir DIR [--qrels FILE] [--model FILE | --bert-model FILE --vocab FILE] [--config FILE]"

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runTarget(ctx, "eval", evalSynopsis, []target{
		{"search", "retrieval quality on a BEIR-layout folder", runEvalSearch},
	}, args, stdout, stderr)
}

func runEvalSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval search", evalSynopsis, stdout)
	path := configFlag(fs)
	dir := fs.String("beir", "", "BEIR folder with corpus.jsonl, queries.jsonl and qrels/*.tsv (required)")
	qrels := fs.String("qrels", "", "qrels file (default: DIR/qrels/test.tsv, else the folder's only qrels file)")
	model := fs.String("model", "", "hashed embedding-bag ONNX model (default: the untrained model built from embed.model)")
	bertModel := fs.String("bert-model", "", "BERT-family ONNX model (e.g. all-MiniLM-L6-v2 model.onnx); needs --vocab")
	vocab := fs.String("vocab", "", "WordPiece vocab.txt for --bert-model")
	maxLen := fs.Int("max-len", 0, "ids per text for --bert-model, [CLS] and [SEP] included (default 256)")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("eval search: --beir is required")
	}
	if (*bertModel == "") != (*vocab == "") {
		return errors.New("eval search: --bert-model and --vocab go together")
	}
	if *bertModel != "" && *model != "" {
		return errors.New("eval search: --model and --bert-model are exclusive")
	}
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		return err
	}
	log := cfg.Log.Logger(stderr)
	ds, err := beir.Load(ctx, *dir, *qrels)
	if err != nil {
		return err
	}

	var (
		enc  beir.Encoder
		name string
	)
	rt := cfg.Embed.Runtime
	switch {
	case *bertModel != "":
		b, err := embed.OpenBERT(ctx, embed.BERTConfig{ModelPath: *bertModel, VocabPath: *vocab, MaxLen: *maxLen,
			Sessions: rt.Sessions, IntraOpThreads: rt.IntraOpThreads, BatchSize: rt.BatchSize}, log)
		if err != nil {
			return err
		}
		defer b.Close()
		enc, name = b, *bertModel
	default:
		mpath := *model
		name = mpath
		if mpath == "" {
			// The untrained model is a pure function of embed.model, so
			// building it here evaluates exactly what `build` would ship.
			data, err := embed.BuildHashedModel(cfg.Embed.Model)
			if err != nil {
				return err
			}
			tmp, err := os.MkdirTemp("", "recsys-eval-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			mpath = filepath.Join(tmp, "model.onnx")
			if err := os.WriteFile(mpath, data, 0o600); err != nil {
				return err
			}
			name = "untrained hashed model (embed.model)"
		}
		rt.ModelPath = mpath
		e, err := embed.Open(rt, log)
		if err != nil {
			return err
		}
		defer e.Close()
		enc = e
	}

	start := time.Now()
	run, err := beir.Retrieve(ctx, enc, ds.Corpus, ds.Queries, 100, nil)
	if err != nil {
		return fmt.Errorf("eval search: %w", err)
	}
	fmt.Fprintf(stdout, "dataset     %s (%d documents)\nqrels       %s\nmodel       %s\nretrieval   %s\n",
		*dir, len(ds.Corpus), ds.QrelsPath, name, time.Since(start).Round(time.Millisecond))
	beir.Evaluate(run, ds.Qrels).Print(stdout)
	return nil
}
