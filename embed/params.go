package embed

import "fmt"

// InitialParams returns the weights BuildHashedModel writes for cfg: the
// seeded random table (Buckets x BagDim, row 0 zero) and projection
// (BagDim x Dim). The trainer starts from them, so a trained model is
// always compared against the exact untrained model of the same config.
func InitialParams(cfg ModelConfig) (table, proj []float32, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("initial params: %w", err)
	}
	table, proj = randomParams(cfg)
	return table, proj, nil
}
