//go:build race

package counters

// raceEnabled shrinks the million-event bound test under -race, where it
// would take minutes; make test runs it in full without the detector.
const raceEnabled = true
