//go:build !race

package movielens

const raceEnabled = false
