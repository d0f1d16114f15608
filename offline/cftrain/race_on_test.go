//go:build race

package cftrain_test

// raceEnabled lets the MovieLens evaluation skip under -race: it is one
// long computation (about 10x slower there) whose concurrency the small
// training tests already cover.
const raceEnabled = true
