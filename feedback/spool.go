package feedback

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/recsys-dev/recsys/internal/atomicfile"
)

// ErrSpoolFull is returned by Spool.Append when the entries would not fit in
// MaxBytes. The HTTP layer answers 503 with Retry-After: refusing is the only
// way to stay bounded without dropping something that was acknowledged.
var ErrSpoolFull = errors.New("feedback spool full")

// Spool defaults applied to zero fields of SpoolConfig.
const (
	DefaultSpoolMaxBytes     = 1 << 30
	DefaultSpoolSegmentBytes = 64 << 20
	DefaultSpoolRetryAfter   = 5 * time.Second
)

// SpoolConfig configures the on-disk spool that holds events while Kafka is
// unreachable.
type SpoolConfig struct {
	// Dir holds the segment files and the drain cursor. Empty disables the
	// spool: events are then refused (503) while Kafka is unreachable.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool on disk; 0 means 1 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a new segment file starts; drained
	// segments are deleted whole. 0 means 64 MiB.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// RetryAfter is what a 503 for a full spool tells clients; 0 means 5s.
	RetryAfter time.Duration `yaml:"retry_after"`
}

// Validate reports every invalid key, naming it.
func (c SpoolConfig) Validate() error {
	var errs []error
	if c.MaxBytes < 0 {
		errs = append(errs, errors.New("max_bytes: must be >= 0 (0 means 1 GiB)"))
	}
	if c.SegmentBytes < 0 {
		errs = append(errs, errors.New("segment_bytes: must be >= 0 (0 means 64 MiB)"))
	}
	if c.SegmentBytes > 0 && c.MaxBytes > 0 && c.SegmentBytes > c.MaxBytes {
		errs = append(errs, errors.New("segment_bytes: must be <= max_bytes"))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, errors.New("retry_after: must be >= 0 (0 means 5s)"))
	}
	return errors.Join(errs...)
}

func (c SpoolConfig) withDefaults() SpoolConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultSpoolMaxBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = min(DefaultSpoolSegmentBytes, c.MaxBytes)
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultSpoolRetryAfter
	}
	return c
}

// Frame layout: 4 bytes payload length, 4 bytes CRC-32C of the payload, the
// payload. The checksum tells a torn tail (a crash mid-write) from data.
const (
	frameHeader = 8
	segSuffix   = ".seg"
	cursorFile  = "cursor"
	maxEntry    = 4 * MaxEventBytes
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

// Spool is a bounded, append-only queue of opaque entries in fsynced segment
// files. Append returns only after the entries are on disk; Peek and Commit
// drain them in append order from one goroutine. The drain cursor is
// written after the entries were delivered, so a crash in between delivers
// them again: consumers deduplicate by event id.
//
// Appends are group-committed: concurrent appenders write under mu and share
// one fsync under syncMu, so throughput under load is not one fsync per event.
// Lock order: syncMu is never taken while holding mu.
type Spool struct {
	cfg    SpoolConfig
	logger *slog.Logger
	unlock func() error

	mu      sync.Mutex
	segs    []segment // oldest first; the last is being written
	w       *os.File  // the last segment, open for append
	bw      *bufio.Writer
	written uint64 // sequence number after the last written entry
	head    uint64 // sequence number of the next entry to drain
	bytes   int64  // bytes of segment files on disk
	closed  bool

	syncMu sync.Mutex
	synced uint64 // entries before this sequence number are fsynced

	// Drain-side state, owned by the single drainer.
	peeked uint64 // sequence number after the entries Peek returned
}

// OpenSpool opens (or creates) the spool in cfg.Dir, recovering from a crash:
// a torn last frame is cut off, and entries already drained are skipped. It
// holds an exclusive lock on the directory while open.
func OpenSpool(cfg SpoolConfig, logger *slog.Logger) (*Spool, error) {
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
	s := &Spool{cfg: cfg, logger: logger, unlock: unlock}
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

func (s *Spool) recover() error {
	names, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return err
	}
	for _, de := range names {
		name := de.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		base, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			return fmt.Errorf("segment %s: name is not a sequence number", name)
		}
		s.segs = append(s.segs, segment{base: base})
	}
	slices.SortFunc(s.segs, func(a, b segment) int { return cmp.Compare(a.base, b.base) })
	for i := range s.segs {
		last := i == len(s.segs)-1
		if err := s.scan(&s.segs[i], last); err != nil {
			return err
		}
		if !last && s.segs[i].base+s.segs[i].count != s.segs[i+1].base {
			return fmt.Errorf("segment %s: holds %d entries but the next segment starts at %d", filepath.Base(s.segs[i].path(s.cfg.Dir)), s.segs[i].count, s.segs[i+1].base)
		}
		s.bytes += s.segs[i].size
	}
	if b, err := os.ReadFile(filepath.Join(s.cfg.Dir, cursorFile)); err == nil {
		if s.head, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cursor: %w", err)
	}
	if len(s.segs) == 0 {
		// Everything was drained and deleted: continue the numbering.
		s.segs = []segment{{base: s.head}}
	}
	first, last := s.segs[0], s.segs[len(s.segs)-1]
	s.written = last.base + last.count
	if s.head < first.base || s.head > s.written {
		return fmt.Errorf("cursor %d outside the spooled entries [%d, %d]", s.head, first.base, s.written)
	}
	f, err := os.OpenFile(last.path(s.cfg.Dir), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	// Cut a torn tail so new frames follow the last complete one.
	if err := f.Truncate(last.size); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Seek(last.size, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	s.w, s.bw = f, bufio.NewWriterSize(f, 256<<10)
	s.dropDrained()
	return atomicfile.SyncDir(s.cfg.Dir)
}

// scan counts the complete frames of seg. Only the last segment may end in
// a torn frame; anywhere else a bad frame is corruption and is reported.
func (s *Spool) scan(seg *segment, last bool) error {
	path := seg.path(s.cfg.Dir)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	for {
		payload, err := readFrame(r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if last {
				s.logger.Warn("feedback spool: cutting a torn tail (crash during a write that was never acknowledged)",
					"segment", filepath.Base(path), "offset", seg.size, "err", err)
				return nil
			}
			return fmt.Errorf("segment %s at offset %d: %w", filepath.Base(path), seg.size, err)
		}
		seg.count++
		seg.size += int64(frameHeader + len(payload))
	}
}

var errTornFrame = errors.New("torn or corrupt frame")

// readFrame returns the next payload, io.EOF at a clean end, or
// errTornFrame when the rest of the file is not a complete valid frame.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, errTornFrame
	}
	n := binary.LittleEndian.Uint32(hdr[:4])
	if n > maxEntry {
		return nil, errTornFrame
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, errTornFrame
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, errTornFrame
	}
	return payload, nil
}

// Append writes entries and returns once they are fsynced, or
// ErrSpoolFull (nothing written) when they do not fit in MaxBytes. The
// entries of one call are written together and drained in order.
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
	if last.size > 0 && last.size+size > s.cfg.SegmentBytes {
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
	target, f := s.written, s.w
	s.mu.Unlock()
	return s.syncUpTo(target, f)
}

// syncUpTo fsyncs until every entry before target is durable. One fsync
// covers every append written before it started, so concurrent appenders
// mostly find their entries already synced.
func (s *Spool) syncUpTo(target uint64, f *os.File) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= target {
		return nil
	}
	s.mu.Lock()
	upTo, cur := s.written, s.w
	s.mu.Unlock()
	// A roll since our write fsynced our (older) file before closing it.
	if cur == f {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("spool fsync: %w", err)
		}
	}
	s.synced = max(s.synced, upTo)
	return nil
}

// roll fsyncs and closes the current segment and starts a new one. Called
// with mu held.
func (s *Spool) roll() error {
	if err := s.w.Sync(); err != nil {
		return err
	}
	if err := s.w.Close(); err != nil {
		return err
	}
	seg := segment{base: s.written}
	f, err := os.OpenFile(seg.path(s.cfg.Dir), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	s.segs = append(s.segs, seg)
	s.w = f
	s.bw.Reset(f)
	// The new file's directory entry must survive a crash too.
	return atomicfile.SyncDir(s.cfg.Dir)
}

// Peek returns up to max entries from the drain cursor without consuming
// them; Commit consumes them. Only one goroutine may drain.
func (s *Spool) Peek(max int) ([][]byte, error) {
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
		if len(out) >= max || head >= written {
			break
		}
		got, err := s.readSegment(seg, head, max-len(out))
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
// durably and deletes segments that are fully drained.
func (s *Spool) Commit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peeked <= s.head {
		return nil
	}
	if err := atomicfile.WriteBytes(filepath.Join(s.cfg.Dir, cursorFile), []byte(strconv.FormatUint(s.peeked, 10)+"\n")); err != nil {
		return fmt.Errorf("spool commit: %w", err)
	}
	s.head = s.peeked
	s.dropDrained()
	return nil
}

// dropDrained deletes fully drained segments other than the one being
// written. Called with mu held; a failed delete is retried on the next call.
func (s *Spool) dropDrained() {
	for len(s.segs) > 1 && s.segs[0].base+s.segs[0].count <= s.head {
		if err := os.Remove(s.segs[0].path(s.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.logger.Warn("feedback spool: delete drained segment", "err", err)
			return
		}
		s.bytes -= s.segs[0].size
		s.segs = s.segs[1:]
	}
	// The active segment is reset in place once drained, so a quiet spool
	// does not keep a growing file around.
	if len(s.segs) == 1 && s.head == s.written && s.segs[0].size > 0 && !s.closed {
		seg := segment{base: s.written}
		f, err := os.OpenFile(seg.path(s.cfg.Dir), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return // the next roll or commit tries again
		}
		old := s.segs[0]
		_ = s.bw.Flush()
		_ = s.w.Close()
		s.w = f
		s.bw.Reset(f)
		s.segs = []segment{seg}
		_ = os.Remove(old.path(s.cfg.Dir))
		s.bytes -= old.size
		_ = atomicfile.SyncDir(s.cfg.Dir)
	}
}

// Len returns how many entries wait to be drained.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.written - s.head)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return nil
	}
	s.closed = true
	err := errors.Join(s.bw.Flush(), s.w.Sync(), s.w.Close(), s.unlock())
	s.w = nil
	if err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}
