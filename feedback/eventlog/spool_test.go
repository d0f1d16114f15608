package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTestSpool(t testing.TB, cfg SpoolConfig) *Spool {
	t.Helper()
	s, err := OpenSpool(cfg, nil)
	if err != nil {
		t.Fatalf("OpenSpool: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func entries(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "entry-%05d", from+i)
	}
	return out
}

// drainAll peeks and commits until the spool is empty.
func drainAll(t testing.TB, s *Spool, batch int) []string {
	t.Helper()
	var got []string
	for {
		es, err := s.Peek(batch)
		if err != nil {
			t.Fatalf("Peek: %v", err)
		}
		if len(es) == 0 {
			return got
		}
		for _, e := range es {
			got = append(got, string(e))
		}
		if err := s.Commit(); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
}

func wantSeq(t *testing.T, got []string, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("drained %d entries, want %d", len(got), n)
	}
	for i, g := range got {
		if w := fmt.Sprintf("entry-%05d", from+i); g != w {
			t.Fatalf("entry %d = %q, want %q (order broken)", i, g, w)
		}
	}
}

func TestSpool_AppendDrainInOrder(t *testing.T) {
	tests := []struct {
		name         string
		segmentBytes int64
		batch        int
	}{
		{"one segment", 1 << 20, 7},
		{"many small segments", 200, 3},
		{"batch larger than segment", 100, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestSpool(t, SpoolConfig{Dir: dir, SegmentBytes: tt.segmentBytes, MaxBytes: 1 << 20})
			for i := 0; i < 100; i += 10 {
				if err := s.Append(entries(i, 10)); err != nil {
					t.Fatalf("Append: %v", err)
				}
			}
			if s.Len() != 100 {
				t.Fatalf("Len = %d, want 100", s.Len())
			}
			wantSeq(t, drainAll(t, s, tt.batch), 0, 100)
			if s.Len() != 0 {
				t.Errorf("Len after drain = %d", s.Len())
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
			if len(segs) != 1 {
				t.Errorf("%d segment files after a full drain, want 1 (the empty active one)", len(segs))
			}
			if s.Bytes() != 0 {
				t.Errorf("Bytes after drain = %d, want 0", s.Bytes())
			}
		})
	}
}

func TestSpool_Full(t *testing.T) {
	s := openTestSpool(t, SpoolConfig{Dir: t.TempDir(), MaxBytes: 200, SegmentBytes: 100})
	// Each entry is 11 bytes + an 8-byte frame header = 19 bytes.
	if err := s.Append(entries(0, 10)); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := s.Append(entries(10, 1)); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("Append over MaxBytes = %v, want ErrSpoolFull", err)
	}
	if s.Len() != 10 {
		t.Fatalf("a refused append changed the spool: Len = %d", s.Len())
	}
	// Draining frees the space again.
	wantSeq(t, drainAll(t, s, 4), 0, 10)
	if err := s.Append(entries(10, 10)); err != nil {
		t.Fatalf("Append after drain: %v", err)
	}
}

func TestOpenSpool_Recovery(t *testing.T) {
	t.Run("reopen keeps undrained entries and the cursor", func(t *testing.T) {
		dir := t.TempDir()
		cfg := SpoolConfig{Dir: dir, SegmentBytes: 150}
		s, err := OpenSpool(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Append(entries(0, 30)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Peek(12); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		// Peeked but not committed: must come back after the reopen.
		if _, err := s.Peek(5); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := openTestSpool(t, cfg)
		if s2.Len() != 18 {
			t.Fatalf("Len after reopen = %d, want 18", s2.Len())
		}
		if err := s2.Append(entries(30, 5)); err != nil {
			t.Fatal(err)
		}
		wantSeq(t, drainAll(t, s2, 4), 12, 23)
	})
	t.Run("torn tail is cut, earlier entries kept", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenSpool(SpoolConfig{Dir: dir}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Append(entries(0, 5)); err != nil {
			t.Fatal(err)
		}
		// Simulate a crash: the process dies, leaving half a frame.
		seg := s.segs[len(s.segs)-1].path(dir)
		s.unlock()
		f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte{11, 0, 0, 0, 1, 2, 3, 4, 'e', 'n'})
		f.Close()
		s2 := openTestSpool(t, SpoolConfig{Dir: dir})
		if s2.Len() != 5 {
			t.Fatalf("Len = %d, want 5", s2.Len())
		}
		if err := s2.Append(entries(5, 2)); err != nil {
			t.Fatal(err)
		}
		wantSeq(t, drainAll(t, s2, 100), 0, 7)
	})
	t.Run("corrupt frame in an older segment is an error", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenSpool(SpoolConfig{Dir: dir, SegmentBytes: 60}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			if err := s.Append(entries(i, 1)); err != nil {
				t.Fatal(err)
			}
		}
		first := s.segs[0].path(dir)
		s.Close()
		b, _ := os.ReadFile(first)
		b[len(b)-1] ^= 0xff
		os.WriteFile(first, b, 0o644)
		if _, err := OpenSpool(SpoolConfig{Dir: dir, SegmentBytes: 60}, nil); err == nil || !strings.Contains(err.Error(), "torn or corrupt") {
			t.Fatalf("OpenSpool = %v, want a corruption error", err)
		}
	})
	t.Run("directory locked", func(t *testing.T) {
		dir := t.TempDir()
		openTestSpool(t, SpoolConfig{Dir: dir})
		if _, err := OpenSpool(SpoolConfig{Dir: dir}, nil); !errors.Is(err, errDirLocked) {
			t.Fatalf("second OpenSpool = %v, want errDirLocked", err)
		}
	})
}

func TestSpool_ConcurrentAppend(t *testing.T) {
	s := openTestSpool(t, SpoolConfig{Dir: t.TempDir(), SegmentBytes: 4096})
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.Append([][]byte{fmt.Appendf(nil, "w%d-%03d", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := drainAll(t, s, 33)
	if len(got) != writers*each {
		t.Fatalf("drained %d, want %d", len(got), writers*each)
	}
	// Each writer's entries keep their order.
	last := map[string]string{}
	for _, g := range got {
		w := g[:strings.IndexByte(g, '-')]
		if g <= last[w] {
			t.Fatalf("writer %s out of order: %s after %s", w, g, last[w])
		}
		last[w] = g
	}
}

func TestSpoolConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     SpoolConfig
		wantErr string
	}{
		{"zero", SpoolConfig{}, ""},
		{"full", SpoolConfig{Dir: "var/spool", MaxBytes: 1 << 20, SegmentBytes: 1 << 10, RetryAfter: 1}, ""},
		{"negative max", SpoolConfig{MaxBytes: -1}, "max_bytes"},
		{"negative segment", SpoolConfig{SegmentBytes: -1}, "segment_bytes"},
		{"segment over max", SpoolConfig{MaxBytes: 10, SegmentBytes: 11}, "segment_bytes: must be <= max_bytes"},
		{"negative retry", SpoolConfig{RetryAfter: -1}, "retry_after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func BenchmarkSpool_Append(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := openTestSpool(b, SpoolConfig{Dir: b.TempDir(), MaxBytes: 1 << 40})
			batch := make([][]byte, n)
			for i := range batch {
				batch[i] = make([]byte, 300)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := s.Append(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
