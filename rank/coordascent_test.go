package rank

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// blendData is queries whose relevance follows 2*a + b on very different
// scales (a in 0..1, b in 0..100), plus a noise feature and a constant.
func blendData(queries, per int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 3))
	d := &Dataset{Features: []string{"a", "noise", "b", "const"}}
	for range queries {
		for range per {
			a, b, noise := rng.Float64(), 100*rng.Float64(), rng.Float64()
			u := 2*a + b/100
			label := float32(0)
			if u > 2.2 {
				label = 1
			}
			if u > 2.6 {
				label = 2
			}
			d.X = append(d.X, float32(a), float32(noise), float32(b), 7)
			d.Labels = append(d.Labels, label)
		}
		d.Groups = append(d.Groups, per)
	}
	return d
}

func TestTrainLinear_FindsTheBlend(t *testing.T) {
	d := blendData(300, 20, 1)
	w, rep, err := TrainLinear(context.Background(), d, 10, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("weights %v, %+v", w, rep)
	if !(rep.TrainNDCG > rep.StartNDCG) {
		t.Errorf("train NDCG %.4f did not rise above the best single feature's %.4f", rep.TrainNDCG, rep.StartNDCG)
	}
	if w[3] != 0 {
		t.Errorf("the constant feature got weight %v", w[3])
	}
	// The ratio of the raw weights is the blend's, 2 : 1/100, whatever the
	// scales.
	if r := float64(w[0]) / float64(w[2]); math.Abs(math.Log(r/200)) > math.Log(1.6) {
		t.Errorf("weight ratio a/b = %.1f, want about 200", r)
	}
	if math.Abs(float64(w[1])) > 0.3*math.Abs(float64(w[0])) {
		t.Errorf("noise weight %v against a's %v", w[1], w[0])
	}
	// On queries it did not see, the blend beats either feature alone.
	test := blendData(200, 20, 2)
	score := func(w []float32) float64 {
		s := make([]float32, test.Rows())
		for r := range s {
			for f, x := range w {
				s[r] += x * test.X[r*4+f]
			}
		}
		return WeightedNDCG(s, test.Labels, nil, test.Groups, 10)
	}
	got, a, b := score(w), score([]float32{1, 0, 0, 0}), score([]float32{0, 0, 1, 0})
	if !(got > a && got > b) {
		t.Errorf("held-out NDCG %.4f, a alone %.4f, b alone %.4f", got, a, b)
	}
}

func TestTrainLinear_Only(t *testing.T) {
	d := blendData(100, 20, 1)
	w, _, err := TrainLinear(context.Background(), d, 10, 5, []string{"b", "noise"})
	if err != nil {
		t.Fatal(err)
	}
	if w[0] != 0 || w[2] <= 0 {
		t.Errorf("weights %v: want a at 0 (not allowed) and b positive", w)
	}
	if _, _, err := TrainLinear(context.Background(), d, 10, 5, []string{"const"}); !errors.Is(err, ErrConstantFeatures) {
		t.Errorf("only a constant feature: %v, want ErrConstantFeatures", err)
	}
	if _, _, err := TrainLinear(context.Background(), d, 10, 5, []string{"missing"}); err == nil {
		t.Error("an unknown feature name was accepted")
	}
	if _, _, err := TrainLinear(context.Background(), &Dataset{Features: []string{"a"}}, 10, 5, nil); err == nil {
		t.Error("an empty dataset was accepted")
	}
}
