// Package world generates the project's synthetic world: a catalog with
// realistic text and attributes, users with hidden preferences, and the
// click model through which those preferences show. It drives the default
// demo, the closed-loop learning tests and the scale benchmarks.
//
// Everything is a pure function of (seed, index): the same Config gives
// byte-identical files, and a million items are generated one at a time
// without ever being held in memory together. Randomness comes from
// math/rand/v2's PCG, whose output is specified, so files are stable across
// runs and machines built with the same Go release.
package world
