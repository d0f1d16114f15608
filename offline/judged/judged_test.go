package judged

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/engine"
	"github.com/recsys-dev/recsys/index"
	"github.com/recsys-dev/recsys/internal/ort"
	"github.com/recsys-dev/recsys/offline"
	"github.com/recsys-dev/recsys/offline/beir"
	"github.com/recsys-dev/recsys/rank"
)

func TestItems(t *testing.T) {
	long := strings.Repeat("word ", 40)
	items := Items([]beir.Doc{
		{ID: "a", Title: " Titled ", Text: "body"},
		{ID: "b", Text: "  an untitled   abstract\tbegins here"},
		{ID: "c", Text: long},
		{ID: "d"},
	})
	want := []string{"Titled", "an untitled abstract begins here", strings.TrimSpace(long[:maxDerivedTitle]), "d"}
	for i, it := range items {
		if it.Title != want[i] {
			t.Errorf("doc %s: title %q, want %q", it.ID, it.Title, want[i])
		}
		if !it.Available || it.CreatedAt.IsZero() {
			t.Errorf("doc %s: not available or undated: %+v", it.ID, it)
		}
	}
	if err := catalog.Validate(items); err != nil {
		t.Errorf("converted corpus fails validation: %v", err)
	}
}

func TestReadTSV(t *testing.T) {
	js, err := ReadTSV(strings.NewReader("query\titem\tgrade\nred wine\ti1\t2\nred wine\ti2\t0\nusb-c cable\ti3\t1\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != 2 || js[0].Text != "red wine" || js[0].Grades["i1"] != 2 || js[0].Grades["i2"] != 0 || js[1].Grades["i3"] != 1 {
		t.Fatalf("judgments %+v", js)
	}
	for name, body := range map[string]string{
		"two fields":  "red wine\ti1\n",
		"bad grade":   "red wine\ti1\tgood\n",
		"grade range": "red wine\ti1\t11\n",
		"empty item":  "red wine\t\t1\n",
		"duplicate":   "q\ti\t1\nq\ti\t2\n",
		"nothing":     "\n",
	} {
		if _, err := ReadTSV(strings.NewReader(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteTREC(t *testing.T) {
	var buf bytes.Buffer
	err := WriteTREC(&buf, []Answer{{QueryID: "q1", IDs: []string{"d2", "d1"}, Scores: []float32{0.9, 0.5}}}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if want := "q1 Q0 d2 1 0.900000 t\nq1 Q0 d1 2 0.500000 t\n"; buf.String() != want {
		t.Errorf("run file %q, want %q", buf.String(), want)
	}
}

// TestServedPipeline builds a tiny corpus into a real bundle and checks
// that search answers and training rows come from the engine: a query
// naming one document's rare word finds it first, and its training row
// carries the grade and the feature vector the ranker saw.
func TestServedPipeline(t *testing.T) {
	lib, err := ort.FindLibrary()
	if err != nil {
		t.Skipf("onnx runtime not available (run make setup): %v", err)
	}
	if err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
	docs := []beir.Doc{
		{ID: "d1", Title: "Aspirin and platelets", Text: "aspirin inhibits platelet aggregation"},
		{ID: "d2", Title: "Statins", Text: "statins lower cholesterol in adults"},
		{ID: "d3", Title: "", Text: "vitamin d deficiency and bone density"},
		{ID: "d4", Title: "Sleep", Text: "sleep deprivation impairs memory consolidation"},
	}
	ctx := context.Background()
	rc := rank.DefaultConfig()
	o := offline.BuildOptions{Model: embed.ModelConfig{Featurizer: embed.DefaultFeaturizerConfig(), BagDim: 16, Dim: 16, Seed: 1},
		Encoder: embed.EncoderConfig{Sessions: 1, BatchSize: 8}, Index: index.Config{Backend: index.BackendExact}, Rank: rc}
	root := t.TempDir()
	m, dir, err := BuildCorpus(ctx, o, docs, root)
	if err != nil {
		t.Fatal(err)
	}
	if m.Items != 4 || m.Lexical == nil {
		t.Fatalf("manifest: %d items, lexical %v", m.Items, m.Lexical)
	}
	if _, err := os.Stat(filepath.Join(root, "corpus-catalog.jsonl")); err != nil {
		t.Fatalf("no catalog written: %v", err)
	}
	e, err := OpenEngine(ctx, engine.Config{Candidates: 10, RankTimeout: 1e9, RecentDecay: 0.8, MaxRecent: 5}, engine.LoadOptions{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	answers, err := Search(ctx, e, []beir.Query{{ID: "q1", Text: "does cholesterol fall with statins"}, {ID: "q2", Text: "vitamin d bones"}}, 3, engine.ModeLexical)
	if err != nil {
		t.Fatal(err)
	}
	if answers[0].IDs[0] != "d2" || answers[1].IDs[0] != "d3" {
		t.Fatalf("answers %+v", answers)
	}
	rep := beir.Evaluate(Run(answers), beir.Qrels{"q1": {"d2": 1}, "q2": {"d3": 1}})
	if rep.NDCG10 != 1 {
		t.Errorf("nDCG@10 %v, want 1", rep.NDCG10)
	}

	var st Stats
	qs, err := Queries(ctx, e, []Judged{{ID: "q1", Text: "statins cholesterol", Grades: map[string]int{"d2": 2, "gone": 1}}}, 10, engine.ModeHybrid, &st)
	if err != nil {
		t.Fatal(err)
	}
	if st.Queries != 1 || st.Informative != 1 || st.Relevant != 2 || st.Retrieved != 1 || st.Unknown != 1 || !slices.Equal(st.Features, rc.Names()) {
		t.Errorf("stats %+v", st)
	}
	q := qs[0]
	i := slices.Index(q.Items, "d2")
	if i < 0 || q.Labels[i] != 2 || len(q.Features[i]) != len(rc.Names()) {
		t.Fatalf("query %+v", q)
	}
	for j, l := range q.Labels {
		if j != i && l != 0 {
			t.Errorf("unjudged %s labelled %v", q.Items[j], l)
		}
	}
	if lex := q.Features[i][slices.Index(rc.Names(), rank.FeatLexicalScore)]; lex <= 0 {
		t.Errorf("d2's row has lexical_score %v, want its BM25F score", lex)
	}
	Shuffle(qs, 1)
	if qs[0].Time.IsZero() {
		t.Error("Shuffle left the query undated")
	}
}
