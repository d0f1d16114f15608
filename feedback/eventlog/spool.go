package eventlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/recsys-dev/recsys/feedback"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/recsys-dev/recsys/internal/atomicfile"
)

// Frame layout: 4 bytes payload length, 4 bytes CRC-32C of the payload, the
// payload. The checksum tells a torn tail (a crash mid-write) from data.
const (
	frameHeader = 8
	segSuffix   = ".seg"
	// failedSuffix marks a segment an fsync failed on: <segment>.failed.
	failedSuffix = ".failed"
	cursorFile   = "cursor"
	maxEntry     = 4 * feedback.MaxEventBytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one file of frames. Its name is the sequence number of its
// first entry, so the cursor (a sequence number) locates itself.
type segment struct {
	base  uint64 // sequence number of the first entry
	count uint64 // complete entries written
	size  int64  // bytes of complete entries
}

func (s segment) path(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", s.base, segSuffix))
}

// file is what the spool needs of a segment file open for writing.
// *os.File is one; the tests wrap it to see what was fsynced and to inject
// failures.
type file interface {
	io.Writer
	Sync() error
	Close() error
}

// fsys opens segment files and syncs the directory. osFS is the real one.
type fsys interface {
	// Create creates a new segment file; Append opens an existing one at
	// its end.
	Create(path string) (file, error)
	Append(path string) (file, error)
	SyncDir(dir string) error
}

type osFS struct{}

func (osFS) Create(path string) (file, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
}
func (osFS) Append(path string) (file, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
}
func (osFS) SyncDir(dir string) error { return atomicfile.SyncDir(dir) }

// writer is one segment file being (or having been) written, with what is
// known of its durability. Its fields other than f are guarded by Spool.mu.
type writer struct {
	f file
	// first and end bound the sequence numbers written to f.
	first, end uint64
	// safe: every entry written to f is durable, because f was fsynced
	// after the last write and then closed, or because every entry was
	// delivered to Kafka before f was closed unsynced.
	safe bool
	// failed: an fsync of f failed. The kernel may have dropped the dirty
	// pages, and a later fsync can succeed without writing them, so no
	// entry written to f before the failure is ever acknowledged.
	failed bool
	closed bool
}

// Spool is a bounded, append-only queue of opaque entries in fsynced segment
// files. Append returns only after the entries are durable; Peek and Commit
// drain them in append order from one goroutine. The drain cursor is
// written after the entries were delivered, so a crash in between delivers
// them again: consumers deduplicate by event id.
//
// Invariant: Append returns nil only if, when it returns, every entry it
// wrote is in a segment file that was fsynced after the write, and that
// file's directory entry was fsynced after its creation; or the entries
// were delivered and committed. It is kept by syncUpTo alone.
//
// Appends are group-committed: appenders write under mu, then one of them
// fsyncs, under syncMu, every file written since the last fsync, and the
// others find their entries covered. No fsync, close of a written file or
// directory sync happens under mu, so a slow disk stalls only the
// appenders that wait for it. Lock order: syncMu before mu; mu is never held
// while taking syncMu.
type Spool struct {
	cfg    SpoolConfig
	fs     fsys
	logger *slog.Logger
	unlock func() error

	mu      sync.Mutex
	segs    []segment // oldest first; the last is being written
	w       *writer   // the last segment's file, open for append
	bw      *bufio.Writer
	written uint64 // sequence number after the last written entry
	head    uint64 // sequence number of the next entry to drain
	bytes   int64  // bytes of segment files on disk
	closed  bool
	// retired are files rolled away from but not yet fsynced and closed;
	// dirDirty says a segment file was created since the last directory
	// sync. syncUpTo settles both before it acknowledges anything.
	retired  []*writer
	dirDirty bool
	// failed are the files whose fsync failed, for as long as entries of
	// theirs may still be waiting for an answer.
	failed []*writer

	syncMu sync.Mutex
	synced uint64 // entries before this sequence number are durable (but see failed)

	// Drain-side state, owned by the single drainer.
	peeked uint64 // sequence number after the entries Peek returned
}

// OpenSpool opens (or creates) the spool in cfg.Dir, recovering from a crash:
// a torn last frame is cut off, and entries already drained are skipped. It
// holds an exclusive lock on the directory while open.
func OpenSpool(cfg SpoolConfig, logger *slog.Logger) (*Spool, error) {
	return openSpool(cfg, logger, osFS{})
}

func openSpool(cfg SpoolConfig, logger *slog.Logger, fs fsys) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open spool: dir: required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("spool config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	unlock, err := lockDir(filepath.Join(cfg.Dir, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("lock spool dir %s: %w", cfg.Dir, err)
	}
	s := &Spool{cfg: cfg, fs: fs, logger: logger, unlock: unlock}
	if err := s.recover(); err != nil {
		_ = unlock()
		return nil, fmt.Errorf("open spool %s: %w", cfg.Dir, err)
	}
	s.synced, s.peeked = s.written, s.head
	if n := s.written - s.head; n > 0 {
		logger.Info("feedback spool holds undelivered events", "entries", n, "bytes", s.bytes, "dir", cfg.Dir)
	}
	return s, nil
}

// Append writes entries and returns once they are durable (see the
// invariant on Spool), or ErrSpoolFull (nothing written) when they do not
// fit in MaxBytes. The entries of one call go to one segment file and are
// drained in order.
func (s *Spool) Append(entries [][]byte) error {
	var size int64
	for _, e := range entries {
		if len(e) > maxEntry {
			return fmt.Errorf("spool append: entry of %d bytes over the %d limit", len(e), maxEntry)
		}
		size += int64(frameHeader + len(e))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("spool append: %w", ErrClosed)
	}
	if s.bytes+size > s.cfg.MaxBytes {
		s.mu.Unlock()
		return ErrSpoolFull
	}
	last := &s.segs[len(s.segs)-1]
	// A file whose fsync failed takes no more entries: they could never be
	// acknowledged (see writer.failed).
	if s.w.failed || (last.size > 0 && last.size+size > s.cfg.SegmentBytes) {
		if err := s.roll(); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("spool append: %w", err)
		}
		last = &s.segs[len(s.segs)-1]
	}
	var hdr [frameHeader]byte
	for _, e := range entries {
		binary.LittleEndian.PutUint32(hdr[:4], uint32(len(e)))
		binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(e, castagnoli))
		_, _ = s.bw.Write(hdr[:])
		_, _ = s.bw.Write(e)
	}
	if err := s.bw.Flush(); err != nil {
		// The file now may end in a partial frame that later appends would
		// follow; stop appending rather than write after garbage.
		s.closed = true
		s.mu.Unlock()
		return fmt.Errorf("spool append: %w", err)
	}
	last.count += uint64(len(entries))
	last.size += size
	s.bytes += size
	s.written += uint64(len(entries))
	s.w.end = s.written
	target := s.written
	s.mu.Unlock()
	return s.syncUpTo(target)
}

// syncUpTo returns once every entry before target is durable, or with the
// error that keeps it from being. It fsyncs, in order, the retired files
// (older entries), the directory when a segment was created, and the file
// being written; one round covers every append written before it started,
// so concurrent appenders mostly find their entries already synced. A
// failure is reported to the appenders whose entries it concerns: a failed
// file's entries are never acknowledged (failedFor), the others are.
func (s *Spool) syncUpTo(target uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= target {
		return s.failedFor(target)
	}
	s.mu.Lock()
	upTo, cur, dir := s.written, s.w, s.dirDirty
	retired := slices.Clone(s.retired)
	s.dirDirty = false
	s.mu.Unlock()

	for _, r := range retired {
		err := r.f.Sync()
		cerr := r.f.Close()
		s.mu.Lock()
		r.closed = true
		if err == nil && cerr == nil {
			r.safe = true
		} else {
			s.fail(r, errors.Join(err, cerr))
		}
		s.retired = slices.DeleteFunc(s.retired, func(x *writer) bool { return x == r })
		s.mu.Unlock()
	}
	if dir {
		if err := s.fs.SyncDir(s.cfg.Dir); err != nil {
			// Nothing created since the last directory sync is durable;
			// the next round tries again.
			s.mu.Lock()
			s.dirDirty = true
			s.mu.Unlock()
			return fmt.Errorf("spool fsync: %w", err)
		}
	}
	if err := cur.f.Sync(); err != nil {
		s.mu.Lock()
		// Closed under us by a reset after every entry was delivered: the
		// entries are safe. Otherwise they are lost to acknowledgement.
		if !cur.safe {
			s.fail(cur, err)
		}
		s.mu.Unlock()
	}
	s.synced = max(s.synced, upTo)
	return s.failedFor(target)
}

// fail marks w's fsync as failed. Called with mu held.
func (s *Spool) fail(w *writer, err error) {
	if !w.failed {
		w.failed = true
		s.failed = append(s.failed, w)
		s.logger.Error("feedback spool: fsync failed; the entries written to that segment are not acknowledged",
			"first", w.first, "end", w.end, "error", err)
		// The marker tells recovery that this segment may end short or
		// torn after a crash, and that whatever it lost was never
		// acknowledged. (I/O under mu, but only on this failure path.)
		if merr := atomicfile.WriteBytes(s.marker(w.first), nil); merr != nil {
			s.logger.Error("feedback spool: cannot mark the failed segment; recovery will refuse it if it is torn", "error", merr)
		}
	}
}

// marker is the path of the failed-fsync marker of the segment starting at
// base.
func (s *Spool) marker(base uint64) string {
	return segment{base: base}.path(s.cfg.Dir) + failedSuffix
}

// failedFor reports an error when the entry before target is in a file
// whose fsync failed. Called with syncMu held.
func (s *Spool) failedFor(target uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.failed {
		if target > w.first && target <= w.end {
			return errSyncFailed
		}
	}
	return nil
}

// roll starts a new segment file. The old one joins retired, fsynced and
// closed by the next syncUpTo, outside mu. Called with mu held.
func (s *Spool) roll() error {
	seg := segment{base: s.written}
	f, err := s.fs.Create(seg.path(s.cfg.Dir))
	if err != nil {
		return err
	}
	if !s.w.failed {
		s.retired = append(s.retired, s.w)
	} else {
		// Its entries are never acknowledged; close it now.
		_ = s.w.f.Close()
		s.w.closed = true
	}
	s.segs = append(s.segs, seg)
	s.w = &writer{f: f, first: s.written, end: s.written}
	s.bw.Reset(f)
	s.dirDirty = true
	return nil
}

// Peek returns up to limit entries from the drain cursor without consuming
// them; Commit consumes them. Only one goroutine may drain.
func (s *Spool) Peek(limit int) ([][]byte, error) {
	s.mu.Lock()
	head, written := s.head, s.written
	var segs []segment
	for _, seg := range s.segs {
		if seg.base+seg.count > head {
			segs = append(segs, seg)
		}
	}
	s.mu.Unlock()
	var out [][]byte
	for _, seg := range segs {
		if len(out) >= limit || head >= written {
			break
		}
		// Entries an fsync failure lost in a crash leave a gap before the
		// next segment (see recover); nothing there was acknowledged.
		head = max(head, seg.base)
		got, err := s.readSegment(seg, head, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		head += uint64(len(got))
	}
	s.peeked = head
	return out, nil
}

// readSegment reads up to n entries of seg starting at sequence number from.
// seg is a snapshot, so frames appended after it was taken are not read.
func (s *Spool) readSegment(seg segment, from uint64, n int) ([][]byte, error) {
	f, err := os.Open(seg.path(s.cfg.Dir))
	if err != nil {
		return nil, fmt.Errorf("spool read: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.LimitReader(f, seg.size), 256<<10)
	var out [][]byte
	for seq := seg.base; seq < seg.base+seg.count && len(out) < n; seq++ {
		payload, err := readFrame(r)
		if err != nil {
			return nil, fmt.Errorf("spool read %s entry %d: %w", filepath.Base(seg.path(s.cfg.Dir)), seq, err)
		}
		if seq >= from {
			out = append(out, payload)
		}
	}
	return out, nil
}

// Commit consumes the entries the last Peek returned: it writes the cursor
// durably (outside mu: only the drainer writes it) and deletes segments
// that are fully drained.
func (s *Spool) Commit() error {
	s.mu.Lock()
	peeked, head := s.peeked, s.head
	s.mu.Unlock()
	if peeked <= head {
		return nil
	}
	if err := atomicfile.WriteBytes(filepath.Join(s.cfg.Dir, cursorFile), []byte(strconv.FormatUint(peeked, 10)+"\n")); err != nil {
		return fmt.Errorf("spool commit: %w", err)
	}
	s.mu.Lock()
	s.head = peeked
	s.dropDrained()
	s.mu.Unlock()
	return nil
}

// dropDrained deletes fully drained segments other than the one being
// written. Called with mu held; a failed delete is retried on the next call.
func (s *Spool) dropDrained() {
	for len(s.segs) > 1 && s.segs[0].base+s.segs[0].count <= s.head {
		if err := os.Remove(s.segs[0].path(s.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.logger.Warn("feedback spool: delete drained segment", "error", err)
			return
		}
		_ = os.Remove(s.marker(s.segs[0].base))
		s.bytes -= s.segs[0].size
		s.segs = s.segs[1:]
	}
	for _, w := range s.failed {
		if w.end <= s.head && w.closed {
			s.failed = slices.DeleteFunc(s.failed, func(x *writer) bool { return x == w })
			break // one per call keeps the loop simple; the rest go on later calls
		}
	}
	// The active segment is reset in place once drained, so a quiet spool
	// does not keep a growing file around. Its entries were delivered, so
	// closing it unsynced loses nothing; the new file's directory entry is
	// synced before anything in it is acknowledged (dirDirty).
	if len(s.segs) == 1 && s.head == s.written && s.segs[0].size > 0 && !s.closed && !s.w.failed {
		seg := segment{base: s.written}
		f, err := s.fs.Create(seg.path(s.cfg.Dir))
		if err != nil {
			return // the next roll or commit tries again
		}
		old := s.segs[0]
		_ = s.bw.Flush()
		s.w.safe, s.w.closed = true, true
		_ = s.w.f.Close()
		s.w = &writer{f: f, first: s.written, end: s.written}
		s.bw.Reset(f)
		s.segs = []segment{seg}
		_ = os.Remove(old.path(s.cfg.Dir))
		s.bytes -= old.size
		s.dirDirty = true
	}
}

// Len returns how many entries wait to be drained.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := uint64(0)
	for _, seg := range s.segs {
		if end := seg.base + seg.count; end > s.head {
			n += end - max(s.head, seg.base)
		}
	}
	return int(n)
}

// Bytes returns the size of the segment files on disk.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// RetryAfter is the delay a full spool asks clients to wait.
func (s *Spool) RetryAfter() time.Duration { return s.cfg.RetryAfter }

// Close fsyncs and closes the spool. Undrained entries stay on disk for the
// next OpenSpool.
func (s *Spool) Close() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return nil
	}
	s.closed = true
	var errs []error
	for _, r := range append(s.retired, s.w) {
		if r.closed {
			continue
		}
		if r == s.w {
			errs = append(errs, s.bw.Flush())
		}
		err := r.f.Sync()
		if err == nil {
			r.safe = true
		}
		errs = append(errs, err, r.f.Close())
		r.closed = true
	}
	s.retired = nil
	if s.dirDirty {
		errs = append(errs, s.fs.SyncDir(s.cfg.Dir))
	}
	errs = append(errs, s.unlock())
	s.w = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}
