package storage

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/mlog/mlog/storage/batch"
)

// compactSuffix names a segment being rewritten by compaction; it ends in
// .tmp, so Open removes it if a crash interrupts the rewrite.
const compactSuffix = ".log.compact.tmp"

// CompactStats says what one Compact did.
type CompactStats struct {
	Segments       int   // segments rewritten
	RecordsRemoved int64 // records dropped (superseded values, expired tombstones)
	BytesBefore    int64 // size of the rewritten segments before
	BytesAfter     int64 // and after
}

// Compacted reports whether the log's cleanup.policy includes compact.
func (l *Log) Compacted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg.Compact
}

// Compact keeps only the latest record of each key in the log's closed,
// durable segments (cleanup.policy=compact). A tombstone (null value) is
// itself dropped once its segment file was last written more than
// deleteRetentionMs ago (the broker's clock, as Kafka's cleaner, not the
// producer's timestamp), so consumers have at least that long to see the
// delete; a negative deleteRetentionMs means the log's own setting
// (delete.retention.ms). Records without a key and control batches are
// kept; the active segment is never touched, and a key's latest record
// there does not yet supersede the closed segments' (as Kafka's cleaner
// stops at the active segment). Compressed batches are decompressed and
// written back uncompressed unless that makes them bigger.
//
// Each segment is rewritten into a .tmp file, fsynced, and renamed over the
// .log after its index files are removed: a crash leaves either the old
// segment or the new one, and missing indexes are rebuilt from the log.
// Offsets never change, so followers and consumers see a log with gaps.
//
// Only offsets below upTo take part: the partition passes its last
// stable offset, so a record that may still be truncated away, or whose
// transaction is undecided, never supersedes a committed one (Kafka's
// first uncleanable offset). aborted, when set, names the transactional
// batches whose transaction was aborted: their records are removed and
// never supersede another (control batches are kept).
func (l *Log) Compact(upTo, deleteRetentionMs int64, aborted func(batch.Header) bool) (CompactStats, error) {
	isAborted := func(h batch.Header) bool {
		return aborted != nil && h.Transactional() && !h.Control() && aborted(h)
	}
	if deleteRetentionMs < 0 {
		l.mu.Lock()
		deleteRetentionMs = l.cfg.DeleteRetention.Milliseconds()
		l.mu.Unlock()
	}
	l.compactMu.Lock()
	defer l.compactMu.Unlock()

	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return CompactStats{}, err
	}
	var closed []*segment
	for _, s := range l.segments() {
		if s.next.Load() <= min(l.recoveryPoint, upTo) && s != l.active() {
			closed = append(closed, s)
		}
	}
	gen := l.gen.Load() // a truncation or reset meanwhile voids the rewrite
	l.mu.Unlock()
	var held []*segment
	defer func() {
		for _, s := range held {
			s.release()
		}
	}()
	for _, s := range closed {
		if !s.acquire() {
			return CompactStats{}, nil // retention or a reset got there first
		}
		held = append(held, s)
	}
	if len(held) == 0 {
		return CompactStats{}, nil
	}

	// The offset of each key's latest record.
	latest := map[string]int64{}
	for _, s := range held {
		err := eachBatch(s, func(b []byte, h batch.Header) error {
			if h.Control() || isAborted(h) {
				return nil
			}
			return batch.EachRecord(b, func(r batch.KeyedRecord) {
				if r.Key != nil {
					latest[string(r.Key)] = r.Offset
				}
			})
		})
		if err != nil {
			return CompactStats{}, err
		}
	}

	var st CompactStats
	horizon := l.cfg.Now().Add(-time.Duration(deleteRetentionMs) * time.Millisecond)
	for _, s := range held {
		// A rewrite refreshes the file's time, which only keeps tombstones
		// longer.
		fi, err := s.log.Stat()
		if err != nil {
			return st, fmt.Errorf("storage: compact %s: %w", s.path, err)
		}
		tombstonesExpired := fi.ModTime().Before(horizon)
		removed, before, after, err := l.compactSegment(s, gen, func(h batch.Header, r batch.KeyedRecord) bool {
			if isAborted(h) {
				return false
			}
			if r.Key == nil {
				return true
			}
			if latest[string(r.Key)] != r.Offset {
				return false
			}
			return !r.Tombstone || !tombstonesExpired
		})
		if err != nil {
			return st, err
		}
		if removed > 0 {
			st.Segments++
			st.RecordsRemoved += removed
			st.BytesBefore += before
			st.BytesAfter += after
		}
	}
	if st.Segments > 0 {
		l.log.Info("compacted", "segments", st.Segments, "records_removed", st.RecordsRemoved,
			"bytes_before", st.BytesBefore, "bytes_after", st.BytesAfter)
	}
	return st, nil
}

// eachBatch calls fn with every whole, CRC-checked batch of s.
func eachBatch(s *segment, fn func([]byte, batch.Header) error) error {
	sc := newScanner(s.log, 0, s.size.Load(), 1<<20, true)
	defer sc.close()
	for sc.next() {
		if err := fn(sc.bytes, sc.hdr); err != nil {
			return fmt.Errorf("%w: %s at %d: %w", ErrCorruptSegment, s.path, sc.batchPos, err)
		}
	}
	if sc.err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path, sc.err)
	}
	return nil
}

// compactSegment rewrites s keeping the records keep selects and swaps the
// new file in. Nothing changes when keep selects every record. A batch is
// copied as it is unless records leave it, and also when its filtered
// (uncompressed) form would be bigger: the new segment is never larger than
// the old one.
func (l *Log) compactSegment(s *segment, gen uint64, keep func(batch.Header, batch.KeyedRecord) bool) (removed, before, after int64, err error) {
	fs := l.cfg.FS
	tmp := s.path + compactSuffix
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("storage: compact %s: %w", s.path, err)
	}
	abort := func(err error) (int64, int64, int64, error) {
		_ = f.Close()
		_ = fs.Remove(tmp)
		return 0, 0, 0, err
	}
	before = s.size.Load()
	pos := int64(0)
	err = eachBatch(s, func(b []byte, h batch.Header) error {
		out := b
		if !h.Control() {
			nb, kept, err := batch.Filter(b, func(r batch.KeyedRecord) bool { return keep(h, r) })
			if err != nil {
				return err
			}
			switch {
			case kept == h.RecordCount, len(nb) > len(b):
			case kept == 0 && !h.Idempotent():
				removed += int64(h.RecordCount)
				return nil
			default: // an emptied batch stays when a producer's sequence lives in it
				removed += int64(h.RecordCount - kept)
				out = nb
			}
		}
		if _, err := f.WriteAt(out, pos); err != nil {
			return err
		}
		pos += int64(len(out))
		return nil
	})
	if err != nil || removed == 0 {
		return abort(err)
	}
	if pos == 0 {
		_, _, _, _ = abort(nil)
		dropped, err := l.dropCompacted(s, gen, before)
		if !dropped {
			return 0, 0, 0, err
		}
		return removed, before, 0, nil
	}
	if err := f.Sync(); err != nil {
		return abort(fmt.Errorf("storage: compact %s: %w", s.path, err))
	}
	if err := f.Close(); err != nil {
		_ = fs.Remove(tmp)
		return 0, 0, 0, fmt.Errorf("storage: compact %s: %w", s.path, err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	i, werr := l.swappableLocked(s, gen, before)
	if werr != nil || i < 0 {
		_ = fs.Remove(tmp)
		return 0, 0, 0, werr
	}
	// Readers of the old segment keep its file and index mappings; load
	// them now so that no reader reloads them from names the new segment
	// owns.
	if _, err := s.indexes(); err != nil {
		_ = fs.Remove(tmp)
		return 0, 0, 0, err
	}
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if err := fs.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			_ = fs.Remove(tmp)
			return 0, 0, 0, fmt.Errorf("storage: compact %s: %w", s.path, err)
		}
	}
	// The removals reach the disk before the rename: the new .log must
	// never meet the old indexes after a crash.
	if err := fs.SyncDir(l.dir); err != nil {
		return 0, 0, 0, l.faultLocked(fmt.Errorf("storage: compact %s: sync dir: %w", s.path, err))
	}
	if err := fs.Rename(tmp, s.path+logSuffix); err != nil {
		_ = fs.Remove(tmp)
		return 0, 0, 0, fmt.Errorf("storage: compact %s: %w", s.path, err)
	}
	if err := fs.SyncDir(l.dir); err != nil {
		return 0, 0, 0, l.faultLocked(fmt.Errorf("storage: compact %s: sync dir: %w", s.path, err))
	}
	ns, err := openSegment(l.segCfg, l.dir, s.base)
	if err != nil {
		return 0, 0, 0, l.faultLocked(err)
	}
	ns.next.Store(s.next.Load())
	ns.maxTs.Store(s.maxTs.Load())
	next := slices.Clone(l.segments())
	next[i] = ns
	l.publish(next)
	s.ixMu.Lock()
	s.deleted = true // its names are the new segment's now
	s.ixMu.Unlock()
	s.release()
	return removed, before, pos, nil
}

// swappableLocked returns s's index in the segment list if compaction may
// still replace it: the log is writable, nothing was truncated or reset
// since the scan began (gen), s is a closed, flushed segment and its size
// is the one that was read. -1 means leave it.
func (l *Log) swappableLocked(s *segment, gen uint64, size int64) (int, error) {
	if err := l.writableLocked(); err != nil {
		return -1, err
	}
	segs := l.segments()
	i := slices.Index(segs, s)
	if i < 0 || i == len(segs)-1 || l.gen.Load() != gen || s.size.Load() != size || slices.Contains(l.unflushed, s) {
		return -1, nil
	}
	return i, nil
}

// dropCompacted removes a closed segment that compaction emptied. Reads of
// offsets in it go on to the next segment, as for any gap.
func (l *Log) dropCompacted(s *segment, gen uint64, size int64) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, err := l.swappableLocked(s, gen, size)
	if err != nil || i < 0 {
		return false, err
	}
	segs := l.segments()
	if _, err := s.indexes(); err != nil { // readers keep these mappings
		return false, err
	}
	l.publish(slices.Delete(slices.Clone(segs), i, i+1))
	l.dropSegmentsLocked([]*segment{s})
	return true, nil
}
