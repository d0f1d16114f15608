package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/feedback/eventlog"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/offline/cftrain"
	"github.com/recsys-dev/recsys/offline/movielens"
	"github.com/recsys-dev/recsys/offline/ranktrain"
)

const evalRecommendSynopsis = "eval recommend --movielens DIR [--protocol per-user|global|both] [--keep DIR] [--config FILE]"

func runEvalRecommend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval recommend", evalRecommendSynopsis, stdout)
	path := configFlag(fs)
	dir := fs.String("movielens", "", "MovieLens folder with ratings.csv and movies.csv (ml-latest-small layout)")
	protocol := fs.String("protocol", "both", "per-user (each user's newest 20% held out), global (one cut-off date) or both")
	keep := fs.String("keep", "", "keep the catalogs, event logs, bundles and models under this directory (default: a temporary one)")
	holdOut := fs.Float64("hold-out", 0.2, "held-out fraction of the ratings")
	positive := fs.Float64("positive", 4, "ratings at or above are liked (and become click events)")
	splits := fs.Int("train-splits", 2, "shifted cut-offs inside the training ratings whose users train the ranker")
	rc := ranktrain.DefaultConfig()
	// About 500 users and sparse positives: small steps, big leaves and a
	// patient, larger validation split keep early stopping from reacting to
	// noise.
	rc.Model.LearningRate, rc.Model.MinLeafRows, rc.Model.MaxLeaves, rc.Model.EarlyStopping, rc.Model.ValidFraction = 0.05, 100, 15, 100, 0.25
	rc.MinTestQueries = 20
	// Both learners: on MovieLens the trees learn little beyond the
	// factorisation's order, while a linear blend of the sources' scores
	// carries from the training windows to the test (see the README).
	rc.Learner = ranktrain.LearnerBoth
	fs.StringVar(&rc.Learner, "learner", rc.Learner, "trees, linear or both (as train rank --learner)")
	// MovieLens's ratings continue the user's latest ones, so the
	// item-to-item source counts what users liked next, and the linear
	// learner weighs the two collaborative scores: both measured in the
	// README, both settings a deployment has (build.sources.neighbours
	// .method, train rank --linear-features).
	linFeatures := fs.String("linear-features", "als_score,cooc_score", "comma-separated features the linear learner may weigh (empty: all)")
	method := fs.String("neighbours-method", cftrain.MethodSequence, "build.sources.neighbours.method for the item-to-item source (cosine, ease, sequence); empty: the configuration's")
	fs.IntVar(&rc.Model.Trees, "trees", rc.Model.Trees, "most boosting rounds of the ranker")
	fs.Float64Var(&rc.Model.LearningRate, "lr", rc.Model.LearningRate, "ranker shrinkage")
	fs.IntVar(&rc.Model.MaxLeaves, "leaves", rc.Model.MaxLeaves, "most leaves per tree")
	fs.IntVar(&rc.Model.MinLeafRows, "min-leaf", rc.Model.MinLeafRows, "fewest rows per leaf")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	rc.LinearFeatures = splitList(*linFeatures)
	if *dir == "" {
		return errors.New("eval recommend: --movielens is required")
	}
	protocols := []string{movielens.PerUser, movielens.Global}
	switch *protocol {
	case "both":
	case movielens.PerUser, movielens.Global:
		protocols = []string{*protocol}
	default:
		return fmt.Errorf("eval recommend: --protocol: want per-user, global or both, got %q", *protocol)
	}
	if err := ort.Init(cfg.ONNXRuntime.Library); err != nil {
		return err
	}
	d, err := movielens.Load(*dir)
	if err != nil {
		return err
	}
	root := *keep
	if root == "" {
		tmp, err := os.MkdirTemp("", "recsys-eval-recommend-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		root = tmp
	}
	log := cfg.Log.Logger(stderr)
	broker, err := eventlog.StartBroker(eventlog.BrokerConfig{DataDir: filepath.Join(root, "kafka"), Addr: "127.0.0.1:0"}, log)
	if err != nil {
		return err
	}
	defer broker.Close()
	current, _, err := linearRanker(cfg)
	if err != nil {
		return err
	}
	b, err := buildOptions(cfg)
	if err != nil {
		return err
	}
	b.Logger = log
	if *method != "" {
		b.Sources.Neighbours.Method = *method
		if err := b.Sources.Neighbours.Validate(); err != nil {
			return fmt.Errorf("eval recommend: --neighbours-method: %w", err)
		}
	}
	fmt.Fprintf(stdout, "movielens %s: %d ratings by %d users of %d movies; liked = rating >= %g; every user answered by the engine serve runs\n",
		*dir, len(d.Ratings), len(distinctUsers(d)), len(d.Movies), *positive)
	var reps []*movielens.ProductReport
	for _, p := range protocols {
		o := movielens.ProductOptions{Build: b, Engine: cfg.Engine, Load: loadOptions(cfg),
			Log: &brokerLog{cfg: cfg.Kafka.Config, addrs: broker.Addrs(), log: log}, Rank: rc, Current: current,
			Dir: filepath.Join(root, p), HoldOut: *holdOut, Positive: float32(*positive), TrainSplits: *splits, K: 10, RecallAt: 50, Progress: stdout}
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return err
		}
		rep, err := movielens.EvaluateProduct(ctx, d, p, o)
		if err != nil {
			return fmt.Errorf("eval recommend: %s: %w", p, err)
		}
		reps = append(reps, rep)
	}
	for _, rep := range reps {
		fmt.Fprintf(stdout, "\n%s protocol: %d test users (%d with no training positive: popular items), bundle %s, %.0fs\n",
			rep.Protocol, rep.Users, rep.Cold, rep.Bundle, rep.Seconds)
		fmt.Fprintf(stdout, "%-18s %8s %10s\n", "order", "NDCG@10", "Recall@50")
		for _, r := range rep.Rows {
			fmt.Fprintf(stdout, "%-18s %8.4f %10.4f\n", r.Name, r.NDCG, r.Recall)
		}
		fmt.Fprintf(stdout, "merged candidates hold %.3f of the held-out positives; ranker: %s (%s)\n",
			rep.CandidateRecall, rep.Ranker.Decision, rep.Ranker.Reason)
	}
	return nil
}

func distinctUsers(d *movielens.Data) map[int]bool {
	us := map[int]bool{}
	for _, r := range d.Ratings {
		us[r.User] = true
	}
	return us
}

// brokerLog writes each stage's events to a topic of its own on the
// evaluation's broker with the service's producer, and replays it the way
// recsys build does.
type brokerLog struct {
	cfg   eventlog.Config
	addrs []string
	log   *slog.Logger
}

func (l *brokerLog) Write(ctx context.Context, name string, evs []feedback.Event) (offline.Events, error) {
	cfg := l.cfg
	cfg.Brokers, cfg.Topic, cfg.TLS, cfg.SASL = l.addrs, "movielens."+name, eventlog.TLSConfig{}, eventlog.SASLConfig{}
	cfg.ProduceTimeout = time.Minute
	p, err := eventlog.NewProducer(cfg, l.log, nil)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if err := p.EnsureTopic(ctx); err != nil {
		return nil, err
	}
	// PublishAsync drops what does not fit the client's buffer: flush
	// every few thousand (the build checks it replays every event).
	for i, ev := range evs {
		p.PublishAsync(ev)
		if (i+1)%2000 == 0 || i == len(evs)-1 {
			if err := p.Flush(ctx); err != nil {
				return nil, err
			}
		}
	}
	return topicEvents{cfg: cfg, log: l.log}, nil
}
