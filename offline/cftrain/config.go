package cftrain

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/recsys-dev/recsys/index/cf"
)

// Item-to-item similarity methods.
const (
	// MethodCosine is the popularity-discounted co-engagement similarity
	// (Alpha, Shrink): linear in the pairs, any catalog size.
	MethodCosine = "cosine"
	// MethodEASE is the closed-form item-item linear model over the
	// EaseItems most used items: cubic in them, better where it fits.
	MethodEASE = "ease"
	// MethodSequence counts what users engaged with next: items within
	// Window places after an item in a user's time order (and, weighted
	// Back, before it), with popular items discounted as in the cosine.
	MethodSequence = "sequence"
)

// NeighboursConfig sets the item-to-item table.
type NeighboursConfig struct {
	// Method is MethodCosine, MethodEASE or MethodSequence.
	Method string `yaml:"method"`
	// Window is how many places after an item in a user's time order its
	// successors are counted (sequence); Back weighs its predecessors
	// within the window (0: successors only).
	Window int     `yaml:"window"`
	Back   float64 `yaml:"back"`
	// EaseLambda is the EASE model's L2 regularisation, EaseItems how
	// many of the most used items it covers.
	EaseLambda float64 `yaml:"ease_lambda"`
	EaseItems  int     `yaml:"ease_items"`
	// TopN is the number of neighbours kept per item.
	TopN int `yaml:"top_n"`
	// HalfLife decays an interaction's weight by its age at now: w *
	// 2^(-age/HalfLife), so old co-engagement fades (0: no decay).
	HalfLife time.Duration `yaml:"half_life"`
	// Alpha discounts popular items: sim(i, j) = c(i, j) / (n(i)^Alpha *
	// n(j)^(1-Alpha)) with c the co-engagement and n the decayed weight
	// sums; 0.5 is the cosine, more than 0.5 lets popular neighbours rank
	// higher in an item's row.
	Alpha float64 `yaml:"alpha"`
	// Shrink damps pairs with little support: the similarity is
	// multiplied by c / (c + Shrink).
	Shrink float64 `yaml:"shrink"`
	// MaxUserItems caps a user's items to their most recent ones (0: no
	// cap). A user's items cost the square of their number in pairs, so a
	// crawler or a shared account would dominate the run; real heavy users
	// keep their recent taste.
	MaxUserItems int `yaml:"max_user_items"`
	// Workers is the number of goroutines (0: GOMAXPROCS).
	Workers int `yaml:"workers"`
}

// DefaultNeighboursConfig is the configuration tuned on MovieLens
// ml-latest-small (TestMovieLensTune; NDCG@10 0.116 on the per-user
// split). No time decay: there it cost a third of the quality at any
// half-life up to ten years, since users of every era are served. The
// cap of 150 items per user is worth +0.01 there: heavy users'
// co-occurrences are many and weak.
func DefaultNeighboursConfig() NeighboursConfig {
	return NeighboursConfig{Method: MethodCosine, EaseLambda: 200, EaseItems: 4000, Window: 30, Back: 0.1, TopN: 200, Alpha: 0.4, Shrink: 5, MaxUserItems: 150}
}

// maxEaseItems bounds EaseItems: their square in float64s is the memory,
// their cube the time.
const maxEaseItems = 20000

// maxWindow bounds Window: a request for the sequence costs the window
// times the occurrences of each item.
const maxWindow = 1000

// maxTopN bounds TopN: the table is items x TopN entries and a request
// sums a row per history item.
const maxTopN = 10000

// maxWorkers bounds Workers, against a typo spawning millions.
const maxWorkers = 1024

// Validate reports a bad field, named by its key.
func (c NeighboursConfig) Validate() error {
	var errs []error
	if c.Method != MethodCosine && c.Method != MethodEASE && c.Method != MethodSequence {
		errs = append(errs, fmt.Errorf("method: want %s, %s or %s, got %q", MethodCosine, MethodEASE, MethodSequence, c.Method))
	}
	if c.Method == MethodSequence {
		if c.Window < 1 || c.Window > maxWindow {
			errs = append(errs, fmt.Errorf("window: must be in 1..%d, got %d", maxWindow, c.Window))
		}
		if !(c.Back >= 0 && c.Back <= 1) {
			errs = append(errs, fmt.Errorf("back: must be in 0..1, got %v", c.Back))
		}
	}
	if c.Method == MethodEASE {
		if !(c.EaseLambda > 0) || math.IsInf(c.EaseLambda, 0) {
			errs = append(errs, fmt.Errorf("ease_lambda: must be finite and > 0, got %v", c.EaseLambda))
		}
		if c.EaseItems < 1 || c.EaseItems > maxEaseItems {
			errs = append(errs, fmt.Errorf("ease_items: must be in 1..%d, got %d", maxEaseItems, c.EaseItems))
		}
	}
	if c.TopN < 1 || c.TopN > maxTopN {
		errs = append(errs, fmt.Errorf("top_n: must be in 1..%d, got %d", maxTopN, c.TopN))
	}
	if c.HalfLife < 0 {
		errs = append(errs, fmt.Errorf("half_life: must be >= 0 (0: no decay), got %v", c.HalfLife))
	}
	if !(c.Alpha >= 0 && c.Alpha <= 1) {
		errs = append(errs, fmt.Errorf("alpha: must be in 0..1, got %v", c.Alpha))
	}
	if !(c.Shrink >= 0) || math.IsInf(c.Shrink, 0) {
		errs = append(errs, fmt.Errorf("shrink: must be finite and >= 0, got %v", c.Shrink))
	}
	if c.MaxUserItems < 0 {
		errs = append(errs, fmt.Errorf("max_user_items: must be >= 0 (0: no cap), got %d", c.MaxUserItems))
	}
	if c.Workers < 0 || c.Workers > maxWorkers {
		errs = append(errs, fmt.Errorf("workers: must be in 0..%d (0: GOMAXPROCS), got %d", maxWorkers, c.Workers))
	}
	return errors.Join(errs...)
}

// ALSConfig sets the matrix factorisation.
type ALSConfig struct {
	// Factors is the number of latent factors. A fold-in at request time
	// costs history*Factors^2/2 + Factors^3/6 multiply-adds.
	Factors int `yaml:"factors"`
	// Iterations is the number of alternating passes (users, then items).
	Iterations int `yaml:"iterations"`
	// Lambda is the L2 regularisation, stored with the factors for the
	// fold-in.
	Lambda float64 `yaml:"lambda"`
	// Alpha scales confidence: c = 1 + Alpha * weight.
	Alpha float64 `yaml:"alpha"`
	// HalfLife decays an interaction's weight by its age at now (0: none).
	HalfLife time.Duration `yaml:"half_life"`
	// Seed fixes the random initialisation; a run is deterministic for it.
	Seed uint64 `yaml:"seed"`
	// Workers is the number of goroutines (0: GOMAXPROCS).
	Workers int `yaml:"workers"`
}

// DefaultALSConfig is the configuration tuned on MovieLens
// ml-latest-small (TestMovieLensTune; NDCG@10 0.121, 0.128 with the
// fold-in weights decayed by history position). The regularisation is
// strong and the confidence low: that data has about 7 positives per
// item and weaker settings overfit. Lambda is in units of the squared
// factor norm summed over users, so a much larger catalog or user base
// wants it retuned.
func DefaultALSConfig() ALSConfig {
	return ALSConfig{Factors: 32, Iterations: 10, Lambda: 20, Alpha: 2, Seed: 1}
}

// maxIterations bounds Iterations; ALS converges in tens.
const maxIterations = 1000

// Validate reports a bad field, named by its key.
func (c ALSConfig) Validate() error {
	var errs []error
	if c.Factors < 1 || c.Factors > cf.MaxDim {
		errs = append(errs, fmt.Errorf("factors: must be in 1..%d, got %d", cf.MaxDim, c.Factors))
	}
	if c.Iterations < 1 || c.Iterations > maxIterations {
		errs = append(errs, fmt.Errorf("iterations: must be in 1..%d, got %d", maxIterations, c.Iterations))
	}
	// The factors store them as float32: beyond its range they would be
	// infinite.
	if !(c.Lambda > 0 && c.Lambda <= math.MaxFloat32) {
		errs = append(errs, fmt.Errorf("lambda: must be finite and > 0, got %v", c.Lambda))
	}
	if !(c.Alpha >= 0 && c.Alpha <= math.MaxFloat32) {
		errs = append(errs, fmt.Errorf("alpha: must be finite and >= 0, got %v", c.Alpha))
	}
	if c.HalfLife < 0 {
		errs = append(errs, fmt.Errorf("half_life: must be >= 0 (0: no decay), got %v", c.HalfLife))
	}
	if c.Workers < 0 || c.Workers > maxWorkers {
		errs = append(errs, fmt.Errorf("workers: must be in 0..%d (0: GOMAXPROCS), got %d", maxWorkers, c.Workers))
	}
	return errors.Join(errs...)
}
