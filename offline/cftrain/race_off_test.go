//go:build !race

package cftrain_test

const raceEnabled = false
