package embed

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// runFunc embeds texts into out (one vector per text) in one model run.
type runFunc func(ctx context.Context, texts []string, out [][]float32) error

// encodeAll is the offline path shared by the encoders: batches of
// batchSize texts run in parallel on workers goroutines (one per session).
// Texts are grouped by byte length first, a cheap stand-in for token or
// feature count, so each batch pads to a similar width. newWorker returns a
// worker's run function and a release for its scratch memory. progress,
// when not nil, is called after each batch; calls are serialised and their
// counts increase.
func encodeAll(ctx context.Context, texts []string, workers, batchSize int,
	newWorker func() (runFunc, func()), progress func(done, total int)) ([][]float32, error) {
	out := make([][]float32, len(texts))
	if len(texts) == 0 {
		return out, nil
	}
	order := make([]int, len(texts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(texts[a]), len(texts[b])) })

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan []int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			run, release := newWorker()
			defer release()
			var bt []string
			var bo [][]float32
			for idx := range jobs {
				bt, bo = bt[:0], bo[:0]
				for _, i := range idx {
					bt, bo = append(bt, texts[i]), append(bo, nil)
				}
				if err := run(ctx, bt, bo); err != nil {
					cancel(err)
					continue // drain jobs so the feeder never blocks
				}
				for k, i := range idx {
					out[i] = bo[k]
				}
				mu.Lock()
				done += len(idx)
				if progress != nil {
					progress(done, len(texts))
				}
				mu.Unlock()
			}
		})
	}
feed:
	for start := 0; start < len(order); start += batchSize {
		select {
		case jobs <- order[start:min(start+batchSize, len(order))]:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}
