//go:build race

package main

// raceEnabled lets the SciFact evaluation skip under -race: it is one long
// run of code the package's other tests cover with the detector on; `make
// test` runs it again without it.
const raceEnabled = true
