//go:build race

package movielens

// raceEnabled lets the full evaluation skip under -race: it is one long
// computation (about 10x slower there) whose concurrency, the trainer's,
// the rank package's race tests already cover.
const raceEnabled = true
