package eventlog

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func (s *Spool) recover() error {
	names, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return err
	}
	var segs []segment
	for _, de := range names {
		name := de.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		base, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			return fmt.Errorf("segment %s: name is not a sequence number", name)
		}
		segs = append(segs, segment{base: base})
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.base, b.base) })
	if b, err := os.ReadFile(filepath.Join(s.cfg.Dir, cursorFile)); err == nil {
		if s.head, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cursor: %w", err)
	}
	// A segment the cursor has passed was delivered; after a power loss it
	// may be short or torn (it was never fsynced once drained), so it is
	// removed unread rather than checked.
	for len(segs) > 1 && segs[1].base <= s.head {
		if err := os.Remove(segs[0].path(s.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		segs = segs[1:]
	}
	s.segs = segs
	for i := range s.segs {
		last := i == len(s.segs)-1
		// A segment an fsync failed on may have lost its tail in a crash:
		// entries that were never acknowledged, so it is cut like the last
		// segment's torn tail. Anywhere else a short or torn segment is
		// corruption that may hide acknowledged entries.
		_, err := os.Stat(s.marker(s.segs[i].base))
		marked := err == nil
		if err := s.scan(&s.segs[i], last || marked); err != nil {
			return err
		}
		if end := s.segs[i].base + s.segs[i].count; !last && end != s.segs[i+1].base && !(marked && end < s.segs[i+1].base) {
			return fmt.Errorf("segment %s: holds %d entries but the next segment starts at %d", filepath.Base(s.segs[i].path(s.cfg.Dir)), s.segs[i].count, s.segs[i+1].base)
		}
		s.bytes += s.segs[i].size
	}
	if len(s.segs) == 0 {
		// Everything was drained and deleted: continue the numbering.
		s.segs = []segment{{base: s.head}}
	}
	first, last := s.segs[0], s.segs[len(s.segs)-1]
	s.written = last.base + last.count
	if s.head < first.base || s.head > s.written {
		if len(s.segs) == 1 && s.head > s.written {
			// The only segment was drained and reset before a crash lost
			// its unsynced tail: nothing is left to deliver.
			return s.resetTo(s.head)
		}
		return fmt.Errorf("cursor %d outside the spooled entries [%d, %d]", s.head, first.base, s.written)
	}
	path := last.path(s.cfg.Dir)
	// Cut a torn tail so new frames follow the last complete one.
	if err := os.Truncate(path, last.size); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := s.fs.Append(path)
	if errors.Is(err, os.ErrNotExist) {
		f, err = s.fs.Create(path)
	}
	if err != nil {
		return err
	}
	s.w = &writer{f: f, first: last.base, end: s.written}
	s.bw = bufio.NewWriterSize(f, 256<<10)
	s.dropDrained()
	return s.fs.SyncDir(s.cfg.Dir)
}

// resetTo starts an empty spool whose next entry is seq, at recovery.
func (s *Spool) resetTo(seq uint64) error {
	for _, seg := range s.segs {
		if err := os.Remove(seg.path(s.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	seg := segment{base: seq}
	f, err := s.fs.Create(seg.path(s.cfg.Dir))
	if err != nil {
		return err
	}
	s.segs, s.written, s.bytes = []segment{seg}, seq, 0
	s.w = &writer{f: f, first: seq, end: seq}
	s.bw = bufio.NewWriterSize(f, 256<<10)
	return s.fs.SyncDir(s.cfg.Dir)
}

// scan counts the complete frames of seg. A tolerant scan (the last
// segment, or one marked failed) stops at a torn frame; otherwise a bad
// frame is corruption and is reported.
func (s *Spool) scan(seg *segment, tolerant bool) error {
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
			if tolerant {
				s.logger.Warn("feedback spool: cutting a torn tail (crash during a write that was never acknowledged)",
					"segment", filepath.Base(path), "offset", seg.size, "error", err)
				return nil
			}
			return fmt.Errorf("segment %s at offset %d: %w", filepath.Base(path), seg.size, err)
		}
		seg.count++
		seg.size += int64(frameHeader + len(payload))
	}
}

var errTornFrame = errors.New("torn or corrupt frame")

// errSyncFailed answers an append whose entries are in a segment file an
// fsync failed on.
var errSyncFailed = errors.New("spool fsync: failed on the segment holding these entries")

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
