//go:build race

package cf

// raceEnabled relaxes the allocation checks: under -race sync.Pool drops
// a share of what is put back, so a warm FoldIn allocates now and then.
const raceEnabled = true
