package storage

import (
	"errors"
	"fmt"
	"io"

	"github.com/mlog/mlog/storage/batch"
)

// Region is a byte range of whole batches in one segment file: what a fetch
// sends. It holds the segment open until Release, so retention or truncation
// cannot close the file under a reader.
type Region struct {
	seg      *segment
	Position int64 // in the file
	Size     int64
}

// Empty reports whether the region holds no bytes.
func (r *Region) Empty() bool { return r.Size == 0 }

// File returns the segment file, for sendfile; nil for an empty region.
func (r *Region) File() File {
	if r.seg == nil {
		return nil
	}
	return r.seg.log
}

// Reader reads the region's bytes.
func (r *Region) Reader() *io.SectionReader {
	if r.seg == nil {
		return io.NewSectionReader(eofReader{}, 0, 0)
	}
	return io.NewSectionReader(r.seg.log, r.Position, r.Size)
}

// Bytes reads the region into memory.
func (r *Region) Bytes() ([]byte, error) {
	b := make([]byte, r.Size)
	if _, err := io.ReadFull(r.Reader(), b); err != nil {
		return nil, fmt.Errorf("storage: read region: %w", err)
	}
	return b, nil
}

// Release lets the segment go. It is safe to call more than once.
func (r *Region) Release() {
	if r.seg != nil {
		r.seg.release()
		r.seg = nil
	}
}

type eofReader struct{}

func (eofReader) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }

// Read returns the region of whole batches that starts with the batch holding
// offset and holds at most maxBytes (but always the first batch whole, as
// Kafka's fetch does), with no batch at or above maxOffset (the high
// watermark; negative means the log end offset). An offset at the end gives
// an empty region; one outside [log start, log end] gives
// ErrOffsetOutOfRange. The caller must Release the region.
func (l *Log) Read(offset, maxBytes, maxOffset int64) (Region, error) {
	for {
		r, err := l.read(offset, maxBytes, maxOffset)
		if !errors.Is(err, errSegmentGone) {
			return r, err
		}
		if l.shut.Load() {
			return Region{}, ErrClosed
		}
	}
}

var errSegmentGone = errors.New("storage: segment gone")

func (l *Log) read(offset, maxBytes, maxOffset int64) (Region, error) {
	segs := l.segments()
	start, leo := l.start.Load(), l.leo.Load()
	if offset < start || offset > leo {
		return Region{}, fmt.Errorf("%w: offset %d, log %s holds [%d, %d)", ErrOffsetOutOfRange, offset, l.dir, start, leo)
	}
	if maxOffset < 0 || maxOffset > leo {
		maxOffset = leo
	}
	maxBytes = max(maxBytes, 1)
	for i := segmentFor(segs, offset); i < len(segs) && offset < maxOffset; i++ {
		s := segs[i]
		if s.base >= maxOffset {
			break
		}
		if !s.acquire() {
			return Region{}, errSegmentGone
		}
		end, err := s.positionOf(maxOffset)
		var pos, n int64
		if err == nil {
			pos, n, err = s.read(max(offset, s.base), maxBytes, end)
		}
		if err != nil || n > 0 {
			if err != nil {
				s.release()
				return Region{}, err
			}
			return Region{seg: s, Position: pos, Size: n}, nil
		}
		s.release() // nothing at or after offset here: try the next segment
	}
	return Region{}, nil
}

// OffsetForTimestamp returns the first offset whose record timestamp is >= ts
// (ListOffsets by timestamp). Inside compressed batches it cannot see single
// records, so it returns the batch's first offset. ok is false when every
// record is older.
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, ok bool, err error) {
	for {
		offset, ok, err = l.offsetForTimestamp(ts)
		if !errors.Is(err, errSegmentGone) {
			return offset, ok, err
		}
		if l.shut.Load() {
			return 0, false, ErrClosed
		}
	}
}

func (l *Log) offsetForTimestamp(ts int64) (int64, bool, error) {
	start := l.start.Load()
	for _, s := range l.segments() {
		if !s.acquire() {
			return 0, false, errSegmentGone
		}
		off, ok, err := s.offsetForTimestamp(ts, start)
		s.release()
		if err != nil || ok {
			return off, ok, err
		}
	}
	return 0, false, nil
}

func (s *segment) offsetForTimestamp(ts, logStart int64) (int64, bool, error) {
	maxTs, err := s.maxTimestamp()
	if err != nil || maxTs < ts {
		return 0, false, err
	}
	ix, _ := s.indexes()
	var pos uint32
	if rel, ok := ix.tim.lookup(ts); ok {
		_, pos = ix.off.lookup(rel)
	}
	size := s.size.Load()
	sc := newScanner(s.log, int64(pos), size, lookupBufSize, false)
	for sc.next() {
		h := sc.hdr
		if h.MaxTimestamp < ts || h.LastOffset() < logStart {
			continue
		}
		b := make([]byte, h.Size())
		if _, err := s.log.ReadAt(b, sc.batchPos); err != nil {
			return 0, false, fmt.Errorf("storage: read %s at %d: %w", s.log.Name(), sc.batchPos, err)
		}
		off, ok, err := batch.OffsetForTimestamp(b, ts)
		if err != nil {
			return 0, false, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path, err)
		}
		if ok {
			return max(off, logStart), true, nil
		}
	}
	if sc.err != nil {
		return 0, false, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path, sc.err)
	}
	return 0, false, nil
}

// Retention deletes whole old segments, never the active one: those whose
// newest timestamp is older than RetentionMs, and the oldest while the log
// is bigger than RetentionBytes. The log start offset moves to the first
// remaining segment. It returns how many segments went.
func (l *Log) Retention() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	if l.cfg.KeepSegments {
		return 0, nil // cleanup.policy=compact alone: compaction bounds the log
	}
	segs := l.segments()
	n := 0
	if ms := l.cfg.RetentionMs.Milliseconds(); l.cfg.RetentionMs >= 0 {
		now := l.cfg.Now().UnixMilli()
		for n < len(segs)-1 {
			ts, err := segs[n].maxTimestamp()
			if err != nil {
				return 0, err
			}
			if ts == noTimestamp || now-ts <= ms {
				break
			}
			n++
		}
	}
	if l.cfg.RetentionBytes >= 0 {
		var total int64
		for _, s := range segs[n:] {
			total += s.size.Load()
		}
		for n < len(segs)-1 && total-segs[n].size.Load() >= l.cfg.RetentionBytes {
			total -= segs[n].size.Load()
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	// The new start reaches the disk before any file goes.
	oldStart := l.start.Load()
	newStart := max(oldStart, segs[n].base)
	l.start.Store(newStart)
	if err := writeCheckpoint(l.cfg.FS, l.dir, l.checkpointLocked(false)); err != nil {
		l.start.Store(oldStart)
		return 0, err
	}
	l.publish(segs[n:])
	l.dropSegmentsLocked(segs[:n])
	l.log.Info("retention deleted segments", "segments", n, "log_start_offset", newStart)
	return n, nil
}

// ScanHeaders calls fn with the header of every batch from offset on, in
// order, without reading records or checking CRCs (the partition layer
// rebuilds producer state this way). It stops at fn's first error.
func (l *Log) ScanHeaders(offset int64, fn func(batch.Header) error) error {
	for _, s := range l.segments() {
		if s.next.Load() <= offset {
			continue
		}
		if !s.acquire() {
			// Retention or truncation raced the scan: what was scanned may
			// be gone, so the caller must start again.
			if l.shut.Load() {
				return ErrClosed
			}
			return fmt.Errorf("%w: segment %d went during a header scan", ErrLogChanged, s.base)
		}
		start := int64(0)
		if offset > s.base {
			var err error
			if start, err = s.positionOf(offset); err != nil {
				s.release()
				return err
			}
		}
		sc := newScanner(s.log, start, s.size.Load(), recoverBufSize, false)
		var err error
		for err == nil && sc.next() {
			err = fn(sc.hdr)
		}
		if err == nil && sc.err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path, sc.err)
		}
		s.release()
		if err != nil {
			return err
		}
	}
	return nil
}
