package storage

import (
	"errors"
	"fmt"
	"os"
	"slices"

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
func (l *Log) Compacted() bool { return l.cfg.Compact }

// Compact keeps only the latest record of each key in the log's closed,
// durable segments (cleanup.policy=compact). A tombstone (null value) is
// itself dropped once its batch is older than deleteRetentionMs, so
// consumers have that long to see the delete; a negative deleteRetentionMs
// means the log's own setting (delete.retention.ms). Records without a key
// and control batches are kept; the active segment is never touched, and a
// key's latest record there does not yet supersede
// the closed segments' (as Kafka's cleaner stops at the active segment).
// Compressed batches are decompressed and written back uncompressed.
//
// Each segment is rewritten into a .tmp file, fsynced, and renamed over the
// .log after its index files are removed: a crash leaves either the old
// segment or the new one, and missing indexes are rebuilt from the log.
// Offsets never change, so followers and consumers see a log with gaps.
func (l *Log) Compact(deleteRetentionMs int64) (CompactStats, error) {
	if deleteRetentionMs < 0 {
		deleteRetentionMs = l.cfg.DeleteRetention.Milliseconds()
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
		if s.next.Load() <= l.recoveryPoint && s != l.active() {
			closed = append(closed, s)
		}
	}
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
			if h.Control() {
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
	expired := l.cfg.Now().UnixMilli() - deleteRetentionMs
	for _, s := range held {
		removed, before, after, err := l.compactSegment(s, func(h batch.Header, r batch.KeyedRecord) bool {
			if r.Key == nil {
				return true
			}
			if latest[string(r.Key)] != r.Offset {
				return false
			}
			return !r.Tombstone || h.MaxTimestamp >= expired
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
// new file in. Nothing changes when keep selects every record.
func (l *Log) compactSegment(s *segment, keep func(batch.Header, batch.KeyedRecord) bool) (removed, before, after int64, err error) {
	var out [][]byte
	size := int64(0)
	err = eachBatch(s, func(b []byte, h batch.Header) error {
		if h.Control() {
			out = append(out, slices.Clone(b))
			size += int64(len(b))
			return nil
		}
		nb, kept, err := batch.Filter(b, func(r batch.KeyedRecord) bool { return keep(h, r) })
		if err != nil {
			return err
		}
		removed += int64(h.RecordCount - kept)
		// An emptied batch is kept when a producer's sequence lives in it.
		if kept > 0 || h.Idempotent() {
			out = append(out, nb)
			size += int64(len(nb))
		}
		return nil
	})
	if err != nil || removed == 0 {
		return 0, 0, 0, err
	}
	if len(out) == 0 {
		return removed, s.size.Load(), 0, l.dropCompacted(s)
	}

	fs := l.cfg.FS
	tmp := s.path + compactSuffix
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("storage: compact %s: %w", s.path, err)
	}
	pos := int64(0)
	for _, b := range out {
		if _, err = f.WriteAt(b, pos); err != nil {
			break
		}
		pos += int64(len(b))
	}
	if err == nil {
		err = f.Sync()
	}
	_ = f.Close()
	if err != nil {
		_ = fs.Remove(tmp)
		return 0, 0, 0, fmt.Errorf("storage: compact %s: %w", s.path, err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	segs := l.segments()
	i := slices.Index(segs, s)
	if werr := l.writableLocked(); werr != nil || i < 0 || i == len(segs)-1 {
		_ = fs.Remove(tmp) // closed, truncated away or deleted meanwhile
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
	if err := fs.Rename(tmp, s.path+logSuffix); err != nil {
		_ = fs.Remove(tmp)
		return 0, 0, 0, fmt.Errorf("storage: compact %s: %w", s.path, err)
	}
	if err := fs.SyncDir(l.dir); err != nil {
		return 0, 0, 0, l.faultLocked(fmt.Errorf("storage: compact %s: sync dir: %w", s.path, err))
	}
	ns, err := openSegment(&l.cfg, l.dir, s.base)
	if err != nil {
		return 0, 0, 0, l.faultLocked(err)
	}
	ns.next.Store(s.next.Load())
	ns.maxTs.Store(s.maxTs.Load())
	next := slices.Clone(segs)
	next[i] = ns
	l.publish(next)
	s.ixMu.Lock()
	s.deleted = true // its names are the new segment's now
	s.ixMu.Unlock()
	s.release()
	return removed, s.size.Load(), size, nil
}

// dropCompacted removes a closed segment that compaction emptied. Reads of
// offsets in it go on to the next segment, as for any gap.
func (l *Log) dropCompacted(s *segment) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	segs := l.segments()
	i := slices.Index(segs, s)
	if err := l.writableLocked(); err != nil || i < 0 || i == len(segs)-1 {
		return err
	}
	if _, err := s.indexes(); err != nil { // readers keep these mappings
		return err
	}
	l.publish(slices.Delete(slices.Clone(segs), i, i+1))
	l.dropSegmentsLocked([]*segment{s})
	return nil
}
