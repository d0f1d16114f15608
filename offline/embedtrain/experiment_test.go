package embedtrain

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
	"github.com/recsys-dev/recsys/embed"
	"github.com/recsys-dev/recsys/feedback"
	"github.com/recsys-dev/recsys/offline/beir"
	"github.com/recsys-dev/recsys/world"
)

// TestExperiment_FeedbackPairs is the feedback experiment on the synthetic
// world (minutes of CPU, so opt-in with RECSYS_EXPERIMENTS=1):
//
//  1. Train the catalog-only model M0 on title/description pairs.
//  2. Serve it: users of the training group type queries, see M0's top 20,
//     and click by the world's position-based click model until 50,000
//     clicks are logged as impression and click events.
//  3. Train M1 from the same start on the catalog pairs plus the search
//     pairs the FeedbackLog builds from those events, and M2 on those plus
//     its co-engagement pairs.
//  4. Held-out users (every fifth, never in the log) type queries; their
//     clicks are drawn on 20 random items of the query's category, a
//     logging policy neither model influences. Both models retrieve the
//     top 100 from the whole catalog for those queries; recall@100 of the
//     clicked items is compared.
func TestExperiment_FeedbackPairs(t *testing.T) {
	if os.Getenv("RECSYS_EXPERIMENTS") == "" {
		t.Skip("experiment: set RECSYS_EXPERIMENTS=1 to run it (minutes of CPU)")
	}
	ctx := context.Background()
	const nItems, nUsers, wantClicks = 10000, 2000, 50000
	w, err := world.New(world.Config{Items: nItems, Users: nUsers, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]catalog.Item, nItems)
	texts := make([]string, nItems)
	byCat := map[string][]int{}
	for i := range items {
		items[i] = w.Item(i)
		texts[i] = items[i].Text()
		byCat[items[i].Category] = append(byCat[items[i].Category], i)
	}
	wordCat := map[string]string{}
	for _, c := range world.Categories() {
		for _, wd := range world.Vocabulary(c) {
			wordCat[strings.ToLower(wd)] = c
		}
	}
	var trainUsers, heldOut []world.User
	for i, u := range w.Users() {
		if i%5 == 0 {
			heldOut = append(heldOut, u)
		} else {
			trainUsers = append(trainUsers, u)
		}
	}
	mc := embed.DefaultModelConfig()
	tc := Config{Epochs: 2, Seed: 1}
	catalogPairs := CatalogPairs(items)

	m0, err := NewModel(mc)
	if err != nil {
		t.Fatal(err)
	}
	if err := Train(ctx, m0, catalogPairs, tc, nil); err != nil {
		t.Fatal(err)
	}
	vecs0, err := m0.EmbedAll(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}

	// Step 2: the click log under M0, as the events serving and clients
	// write: a search impression per session and a click per clicked item.
	// Each user's sessions are a minute apart, with a day's gap after
	// every fifth, so co-engagement sees visits rather than whole histories.
	rng := rand.New(rand.NewPCG(7, 8))
	shown := map[string][]int{}
	log := NewFeedbackLog()
	clock := map[string]time.Time{}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clicks, sessions := 0, 0
	for clicks < wantClicks {
		u := &trainUsers[rng.IntN(len(trainUsers))]
		q := w.Query(u, rng)
		top, ok := shown[q]
		if !ok {
			r, err := beir.Search(ctx, vecs0, [][]float32{m0.Embed(q)}, 20)
			if err != nil {
				t.Fatal(err)
			}
			top, shown[q] = r[0], r[0]
		}
		sessions++
		at, ok := clock[u.ID]
		if !ok {
			at = start
		}
		clock[u.ID] = at.Add(time.Minute)
		if sessions%5 == 0 {
			clock[u.ID] = at.Add(24 * time.Hour)
		}
		req := fmt.Sprintf("r%d", sessions)
		log.Add(feedback.Event{EventID: req, Type: feedback.TypeImpression, SchemaVersion: 1, Timestamp: at, UserID: u.ID,
			RequestID: req, Surface: feedback.SurfaceSearch, Query: q})
		for pos, d := range top {
			if rng.Float64() < w.ClickProb(u, &items[d], pos) {
				clicks++
				log.Add(feedback.Event{EventID: fmt.Sprintf("c%d", clicks), Type: feedback.TypeClick, SchemaVersion: 1,
					Timestamp: at.Add(time.Duration(pos) * time.Second), UserID: u.ID, RequestID: req, ItemID: items[d].ID})
			}
		}
	}
	byID := make(map[string]int, len(items))
	for i := range items {
		byID[items[i].ID] = i
	}
	text := func(id string) (string, bool) {
		i, ok := byID[id]
		return texts[i], ok
	}
	searchPairs, sst := log.SearchPairs(text)
	coPairs, cst := log.CoEngagementPairs(text, 0, 0)

	train := func(pairs ...[]Pair) *Model {
		m, err := NewModel(mc)
		if err != nil {
			t.Fatal(err)
		}
		if err := Train(ctx, m, slices.Concat(pairs...), tc, nil); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1 := train(catalogPairs, searchPairs)
	m2 := train(catalogPairs, searchPairs, coPairs)

	// Step 4: held-out users, model-independent exposure.
	var queries []beir.Query
	qrels := beir.Qrels{}
	for ui := range heldOut {
		u := &heldOut[ui]
		for k := 0; k < 10; k++ {
			q := w.Query(u, rng)
			f := strings.Fields(q)
			pool := byCat[wordCat[strings.ToLower(f[len(f)-1])]]
			if len(pool) == 0 {
				t.Fatalf("query %q: no category found for its words", q)
			}
			clicked := map[string]int{}
			for pos := range 20 {
				d := pool[rng.IntN(len(pool))]
				if rng.Float64() < w.ClickProb(u, &items[d], pos) {
					clicked[items[d].ID] = 1
				}
			}
			if len(clicked) > 0 {
				qid := fmt.Sprintf("%s-%d", u.ID, k)
				queries = append(queries, beir.Query{ID: qid, Text: q})
				qrels[qid] = clicked
			}
		}
	}
	ds := &beir.Dataset{Qrels: qrels}
	for i := range items {
		ds.Corpus = append(ds.Corpus, beir.Doc{ID: items[i].ID, Text: texts[i]})
	}
	eval := func(m *Model) beir.Report {
		vecs, err := m.EmbedAll(ctx, texts)
		if err != nil {
			t.Fatal(err)
		}
		r, err := score(ctx, m, vecs, ds, queries)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r0, r1, r2 := eval(m0), eval(m1), eval(m2)
	t.Logf("log: %d clicks in %d sessions from %d training users (%d distinct queries)", clicks, sessions, len(trainUsers), len(shown))
	t.Logf("pairs: %d catalog, %d search (%+v), %d co-engagement (%+v)", len(catalogPairs), len(searchPairs), sst, len(coPairs), cst)
	t.Logf("held-out: %d queries with clicks from %d users", r0.Queries, len(heldOut))
	t.Logf("catalog-only M0:          recall@100 %.4f  recall@10 %.4f  nDCG@10 %.4f", r0.Recall100, r0.Recall10, r0.NDCG10)
	t.Logf("catalog+search M1:        recall@100 %.4f  recall@10 %.4f  nDCG@10 %.4f", r1.Recall100, r1.Recall10, r1.NDCG10)
	t.Logf("catalog+search+co-eng M2: recall@100 %.4f  recall@10 %.4f  nDCG@10 %.4f", r2.Recall100, r2.Recall10, r2.NDCG10)
	if r1.Recall100 <= r0.Recall100 {
		t.Errorf("feedback pairs did not raise recall@100: M0 %.4f, M1 %.4f", r0.Recall100, r1.Recall100)
	}
}
