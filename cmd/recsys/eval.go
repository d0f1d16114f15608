package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/recsys-dev/recsys/config"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/internal/atomicfile"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline/beir"
	"github.com/recsys-dev/recsys/offline/judged"
)

const evalSynopsis = "eval search --beir DIR [--qrels FILE] [--retrieval hybrid|lexical|dense|exact-dense] [--model FILE] [--ranker FILE] " +
	"[--k 100] [--run FILE] [--keep DIR] [--bert-model FILE --vocab FILE (exact-dense only)] [--config FILE]"

// modeExactDense is the brute-force scan over the embeddings outside the
// engine, kept only to compare with.
const modeExactDense = "exact-dense"

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runTarget(ctx, "eval", evalSynopsis, []target{
		{"search", "retrieval quality on a BEIR-layout folder, answered by the engine serve runs", runEvalSearch},
		{"recommend", "recommendation quality on MovieLens, built, trained and answered by the product's own commands", runEvalRecommend},
	}, args, stdout, stderr)
}

// evalFlags are what eval search and train rank --judgments share: a BEIR
// folder built into a bundle with this embedding model and ranker.
type evalFlags struct {
	dir, qrels, model, ranker, keep, retrieval string
	folds                                      foldSpec
}

func (f *evalFlags) register(fs *flag.FlagSet, foldUse string) {
	fs.IntVar(&f.folds.fold, "fold", 0, foldUse)
	fs.IntVar(&f.folds.folds, "folds", 5, "folds of the judged queries, with --fold")
	fs.Uint64Var(&f.folds.seed, "fold-seed", 1, "seed of the fold split (as in train embed)")
	fs.StringVar(&f.dir, "beir", "", "BEIR folder with corpus.jsonl, queries.jsonl and qrels/*.tsv")
	fs.StringVar(&f.qrels, "qrels", "", "qrels file (default: DIR/qrels/test.tsv, else the folder's only qrels file)")
	fs.StringVar(&f.model, "model", "", "embedding model of the bundle, from train embed --out (default: embed.model_file, else the untrained model of embed.model)")
	fs.StringVar(&f.ranker, "ranker", "", "ONNX ranker of the bundle, from train rank (default: the linear ranker of rank.weights)")
	fs.StringVar(&f.keep, "keep", "", "build the corpus bundle under this directory and keep it (default: a temporary directory)")
	fs.StringVar(&f.retrieval, "retrieval", "", "hybrid, lexical or dense (default: engine.retrieval.mode)")
}

// corpusEngine builds the BEIR corpus into a bundle with the product's
// build and opens it in the product's engine. The returned cleanup closes
// the engine and removes a temporary bundle.
func corpusEngine(ctx context.Context, cfg *config.Config, f evalFlags, ds *beir.Dataset, progress io.Writer) (*engine.Engine, string, func(), error) {
	root := f.keep
	cleanup := func() {}
	if root == "" {
		tmp, err := os.MkdirTemp("", "recsys-eval-")
		if err != nil {
			return nil, "", nil, err
		}
		root, cleanup = tmp, func() { os.RemoveAll(tmp) }
	}
	o, err := buildOptions(cfg)
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	o.Progress = progress
	if f.model != "" {
		o.ModelFile = f.model
	}
	o.Ranker = f.ranker // "": the linear ranker of rank.weights
	m, dir, err := judged.BuildCorpus(ctx, o, ds.Corpus, root)
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	e, err := judged.OpenEngine(ctx, cfg.Engine, loadOptions(cfg), dir)
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	desc := fmt.Sprintf("%s (%d items, dim %d, embedding %s %s, ranker %s %s)", m.Version, m.Items, m.Dim,
		m.EmbedModel.Kind, m.EmbedModel.Version, m.Ranker.Kind, m.Ranker.Version)
	return e, desc, func() { e.Close(); cleanup() }, nil
}

func runEvalSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval search", evalSynopsis, stdout)
	path := configFlag(fs)
	var f evalFlags
	f.register(fs, "evaluate on this fold (1..folds) of the judged queries only, the one train embed and train rank --judgments left out")
	k := fs.Int("k", 100, "results per query (Recall@100 needs 100)")
	runPath := fs.String("run", "", "also write the answers as a TREC run file (qid Q0 docid rank score tag)")
	bertModel := fs.String("bert-model", "", "BERT-family ONNX model for --retrieval exact-dense; needs --vocab")
	vocab := fs.String("vocab", "", "WordPiece vocab.txt for --bert-model")
	maxLen := fs.Int("max-len", 0, "ids per text for --bert-model, [CLS] and [SEP] included (default 256)")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	if f.dir == "" {
		return errors.New("eval search: --beir is required")
	}
	if f.retrieval == "" {
		f.retrieval = cfg.Engine.Retrieval.Mode
	}
	switch f.retrieval {
	case engine.ModeHybrid, engine.ModeLexical, engine.ModeDense, modeExactDense:
	default:
		return fmt.Errorf("eval search: --retrieval: want hybrid, lexical, dense or exact-dense, got %q", f.retrieval)
	}
	if (*bertModel == "") != (*vocab == "") {
		return errors.New("eval search: --bert-model and --vocab go together")
	}
	if *bertModel != "" && f.retrieval != modeExactDense {
		return errors.New("eval search: --bert-model runs outside the bundle, with --retrieval exact-dense only")
	}
	if *bertModel != "" && f.model != "" {
		return errors.New("eval search: --model and --bert-model are exclusive")
	}
	if *k < 1 || *k > 1000 {
		return errors.New("eval search: --k must be in 1..1000")
	}
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		return err
	}
	ds, err := beir.Load(ctx, f.dir, f.qrels)
	if err != nil {
		return err
	}
	_, test, err := f.folds.split(ds)
	if err != nil {
		return fmt.Errorf("eval search: %w", err)
	}
	ds = ds.Only(test)
	fmt.Fprintf(stdout, "dataset     %s (%d documents)\nqrels       %s (%s)\nretrieval   %s\n", f.dir, len(ds.Corpus), ds.QrelsPath,
		f.folds, f.retrieval)

	var answers []judged.Answer
	if f.retrieval == modeExactDense {
		if answers, err = exactDense(ctx, cfg, f.model, *bertModel, *vocab, *maxLen, ds, *k, stdout, stderr); err != nil {
			return err
		}
	} else {
		e, desc, cleanup, err := corpusEngine(ctx, cfg, f, ds, stderr)
		if err != nil {
			return err
		}
		defer cleanup()
		rc := cfg.Engine.Retrieval
		lc := cfg.Index.Lexical
		fmt.Fprintf(stdout, "bundle      %s\nlexical     BM25F k1 %g b %g, weights title %g description %g; %s stopwords, %s stemmer\n",
			desc, lc.K1, lc.B, lc.Fields.Title, lc.Fields.Description, lc.Stopwords, lc.Stemmer)
		if f.retrieval == engine.ModeHybrid {
			fmt.Fprintf(stdout, "fusion      %s (rrf_k %g), depths lexical %d dense %d, weights %g/%g, %d candidates ranked\n",
				rc.Fusion, rc.RRFK, rc.LexicalDepth, rc.DenseDepth, rc.LexicalWeight, rc.DenseWeight, cfg.Engine.Candidates)
		}
		if answers, err = judged.Search(ctx, e, ds.Queries, *k, f.retrieval); err != nil {
			return fmt.Errorf("eval search: %w", err)
		}
		lat := make([]time.Duration, len(answers))
		for i, a := range answers {
			lat[i] = a.Latency
		}
		slices.Sort(lat)
		fmt.Fprintf(stdout, "latency     p50 %.0f us, p99 %.0f us per query through engine.Search (one at a time, k %d)\n",
			micros(percentile(lat, 0.5)), micros(percentile(lat, 0.99)), *k)
	}
	if *runPath != "" {
		err := atomicfile.Write(*runPath, func(w io.Writer) error { return judged.WriteTREC(w, answers, "recsys-"+f.retrieval) })
		if err != nil {
			return fmt.Errorf("eval search: --run: %w", err)
		}
	}
	beir.Evaluate(judged.Run(answers), ds.Qrels).Print(stdout)
	return nil
}

// exactDense is the brute-force cosine scan over the embeddings, outside
// the engine: the comparison the earlier evaluation reported.
func exactDense(ctx context.Context, cfg *config.Config, model, bertModel, vocab string, maxLen int, ds *beir.Dataset, k int, stdout, stderr io.Writer) ([]judged.Answer, error) {
	log := cfg.Log.Logger(stderr)
	rt := cfg.Embed.Runtime
	var enc beir.Encoder
	switch {
	case bertModel != "":
		b, err := embed.OpenBERT(ctx, embed.BERTConfig{ModelPath: bertModel, VocabPath: vocab, MaxLen: maxLen,
			Sessions: rt.Sessions, IntraOpThreads: rt.IntraOpThreads, BatchSize: rt.BatchSize}, log)
		if err != nil {
			return nil, err
		}
		defer b.Close()
		enc = b
		fmt.Fprintf(stdout, "model       %s\n", bertModel)
	default:
		if model == "" {
			model = cfg.Embed.ModelFile
		}
		if model == "" {
			// The untrained model is a pure function of embed.model, so
			// building it here evaluates exactly what `build` would ship.
			data, err := embed.BuildHashedModel(cfg.Embed.Model)
			if err != nil {
				return nil, err
			}
			tmp, err := os.MkdirTemp("", "recsys-eval-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(tmp)
			model = filepath.Join(tmp, "model.onnx")
			if err := os.WriteFile(model, data, 0o600); err != nil {
				return nil, err
			}
			fmt.Fprintln(stdout, "model       untrained hashed model (embed.model)")
		} else {
			fmt.Fprintf(stdout, "model       %s\n", model)
		}
		rt.ModelPath = model
		e, err := embed.Open(rt, log)
		if err != nil {
			return nil, err
		}
		defer e.Close()
		enc = e
	}
	run, err := beir.Retrieve(ctx, enc, ds.Corpus, ds.Queries, k, nil)
	if err != nil {
		return nil, fmt.Errorf("eval search: %w", err)
	}
	out := make([]judged.Answer, 0, len(ds.Queries))
	for _, q := range ds.Queries {
		ids := run[q.ID]
		scores := make([]float32, len(ids))
		for i := range scores {
			scores[i] = float32(len(ids) - i)
		}
		out = append(out, judged.Answer{QueryID: q.ID, IDs: ids, Scores: scores})
	}
	return out, nil
}
