// Package cftrain trains the collaborative candidate sources of index/cf
// from interactions replayed from the event log: the item-to-item
// co-engagement table (TrainNeighbours) and implicit-feedback ALS item
// factors (TrainALS). Both are deterministic for their input and config
// (ALS for its seed), whatever the number of workers.
package cftrain
