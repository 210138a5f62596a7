package storage

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/mlog/mlog/storage/batch"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	noTimestamp     = math.MinInt64

	lookupBufSize  = 8 << 10 // header walks after an index lookup
	recoverBufSize = 1 << 20 // full-batch walks during recovery
)

// errOffsetsOutOfOrder marks a batch whose offsets do not follow the one before
// it: recovery treats it as damage.
var errOffsetsOutOfOrder = errors.New("storage: batch offsets out of order")

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// segment is one .log file with its .index and .timeindex. The log's writer
// (holding Log.mu) is its only writer; readers use only the published fields
// (size, next) and the index entries published under them.
type segment struct {
	cfg  *Config
	base int64
	path string // without suffix
	log  File

	size  atomic.Int64 // bytes of whole, published batches
	next  atomic.Int64 // offset after the last batch
	maxTs atomic.Int64 // largest batch maxTimestamp; noTimestamp when unknown
	refs  atomic.Int32 // the log's reference plus one per reader

	ixMu    sync.Mutex
	ix      atomic.Pointer[segIndexes]
	retired []*segIndexes // mappings replaced while readers may use them (ixMu)
	deleted bool          // files removed from the directory; close them at release

	// Writer state: caller holds Log.mu.
	created      int64 // wall clock ms at creation or open, for segment.ms
	firstTs      int64 // first batch's max timestamp, for segment.ms
	sinceEntry   int64 // log bytes since the last offset index entry
	lastTixTs    int64 // timestamp of the last time index entry
	lastBatchRel uint32
	reserved     int64 // log file bytes allocated ahead of appends
	// indexShrunk is set when a truncation dropped published index entries:
	// a reader may still touch them through a mapping, so the files must
	// not be cut below them (SIGBUS); they are unlinked instead at finalize
	// and rebuilt on the next open.
	indexShrunk bool
}

// The log file's blocks are allocated ahead of the end, so appends do not
// allocate blocks one write at a time: as far ahead as the segment already
// holds, between reserveMin and reserveMax. A busy log soon reserves in
// 64 MiB steps; thousands of quiet partitions do not each hold 64 MiB of
// empty blocks (2,000 of them filled a 77 GB disk).
const (
	reserveMin = 1 << 20
	reserveMax = 64 << 20
)

type segIndexes struct {
	off offsetIndex
	tim timeIndex
}

func (x *segIndexes) close() error { return errors.Join(x.off.close(), x.tim.close()) }
func (x *segIndexes) closeRaw()    { x.off.closeRaw(); x.tim.closeRaw() }

func newSegmentStruct(cfg *Config, dir string, base int64, f File) *segment {
	s := &segment{cfg: cfg, base: base, path: filepath.Join(dir, segmentName(base)), log: f,
		firstTs: noTimestamp, lastTixTs: noTimestamp, created: cfg.Now().UnixMilli()}
	s.maxTs.Store(noTimestamp)
	s.next.Store(base)
	s.refs.Store(1)
	return s
}

// createSegment makes a new, empty, active segment.
func createSegment(cfg *Config, dir string, base int64) (*segment, error) {
	f, err := cfg.FS.OpenFile(filepath.Join(dir, segmentName(base)+logSuffix), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: create segment %d in %s: %w", base, dir, err)
	}
	s := newSegmentStruct(cfg, dir, base, f)
	ix, err := s.openIndexes(indexFresh)
	if err == nil {
		err = cfg.FS.SyncDir(dir)
	}
	if err != nil {
		if ix != nil {
			ix.closeRaw()
		}
		_ = f.Close()
		// Leave nothing behind: an empty segment on disk would, on the next
		// open, end the segment before it.
		for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			_ = cfg.FS.Remove(s.path + suffix)
		}
		return nil, err
	}
	s.ix.Store(ix)
	return s, nil
}

// openSegment opens an existing segment's log file; indexes load lazily.
func openSegment(cfg *Config, dir string, base int64) (*segment, error) {
	f, err := cfg.FS.OpenFile(filepath.Join(dir, segmentName(base)+logSuffix), os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: open segment: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("storage: stat segment: %w", err)
	}
	s := newSegmentStruct(cfg, dir, base, f)
	s.size.Store(fi.Size())
	return s, nil
}

func (s *segment) openIndexes(mode indexMode) (*segIndexes, error) {
	off, _, err := openIndexFile(s.cfg.FS, s.path+indexSuffix, offsetEntrySize, s.cfg.indexBytes(offsetEntrySize), mode)
	if err != nil {
		return nil, err
	}
	tim, _, err := openIndexFile(s.cfg.FS, s.path+timeIndexSuffix, timeEntrySize, s.cfg.indexBytes(timeEntrySize), mode)
	if err != nil {
		off.closeRaw()
		return nil, err
	}
	return &segIndexes{off: offsetIndex{off}, tim: timeIndex{tim}}, nil
}

// loadIndexes maps existing index files, checks them against the log and
// rebuilds them from the log when they are missing or inconsistent.
func (s *segment) loadIndexes(mode indexMode) (*segIndexes, error) {
	off, offN, err1 := openIndexFile(s.cfg.FS, s.path+indexSuffix, offsetEntrySize, s.cfg.indexBytes(offsetEntrySize), mode)
	tim, timN, err2 := openIndexFile(s.cfg.FS, s.path+timeIndexSuffix, timeEntrySize, s.cfg.indexBytes(timeEntrySize), mode)
	if err1 == nil && err2 == nil && offN >= 0 && timN >= 0 {
		ix := &segIndexes{off: offsetIndex{off}, tim: timeIndex{tim}}
		ix.off.n.Store(offN)
		ix.tim.n.Store(timN)
		size := s.size.Load()
		err := ix.off.check(size)
		if err == nil && size > 0 {
			err = ix.tim.check(uint32(min(s.next.Load()-s.base, math.MaxUint32)))
		}
		if err == nil {
			return ix, nil
		}
		s.cfg.Logger.Warn("rebuilding index", "segment", s.path, "err", err)
	}
	if off != nil {
		off.closeRaw()
	}
	if tim != nil {
		tim.closeRaw()
	}
	return s.rebuildIndexes(mode == indexReadOnly)
}

// rebuildIndexes writes fresh indexes by walking the log's batch headers.
func (s *segment) rebuildIndexes(trim bool) (*segIndexes, error) {
	ix, err := s.openIndexes(indexFresh)
	if err != nil {
		return nil, err
	}
	sc := newScanner(s.log, 0, s.size.Load(), lookupBufSize, false)
	s.resetWriterState()
	for sc.next() {
		s.indexBatch(ix, sc.hdr, sc.batchPos)
	}
	if sc.err != nil {
		ix.closeRaw()
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path, sc.err)
	}
	if trim {
		s.finalizeIndexes(ix)
	}
	return ix, nil
}

// indexes returns the segment's indexes, loading them on first use: a clean
// open maps only what is read.
func (s *segment) indexes() (*segIndexes, error) {
	if ix := s.ix.Load(); ix != nil {
		return ix, nil
	}
	s.ixMu.Lock()
	defer s.ixMu.Unlock()
	if ix := s.ix.Load(); ix != nil {
		return ix, nil
	}
	if s.deleted {
		// The files are gone, and a new segment may own the names now:
		// an empty index makes lookups walk from the start.
		return &segIndexes{off: offsetIndex{&indexFile{entrySize: offsetEntrySize}},
			tim: timeIndex{&indexFile{entrySize: timeEntrySize}}}, nil
	}
	ix, err := s.loadIndexes(indexReadOnly)
	if err != nil {
		return nil, err
	}
	if s.maxTs.Load() == noTimestamp {
		if ts, _, ok := ix.tim.last(); ok {
			s.maxTs.Store(ts)
		}
	}
	s.ix.Store(ix)
	return ix, nil
}

// activate makes the segment the appender's again (after a truncation): its
// indexes are remapped writable; the old mappings stay until release because
// readers may hold them.
func (s *segment) activate() error {
	s.ixMu.Lock()
	defer s.ixMu.Unlock()
	ix, err := s.loadIndexes(indexWritable)
	if err != nil {
		return err
	}
	if old := s.ix.Load(); old != nil {
		s.retired = append(s.retired, old)
		s.indexShrunk = true // the old mapping may be read past what stays
	}
	s.ix.Store(ix)
	return s.recomputeWriterState(ix)
}

func (s *segment) resetWriterState() {
	s.firstTs, s.sinceEntry, s.lastTixTs, s.lastBatchRel = noTimestamp, 0, noTimestamp, 0
	s.maxTs.Store(noTimestamp)
}

// indexBatch records a batch just written at pos in the indexes and the
// writer state. Index entries are sparse: one per IndexIntervalBytes.
func (s *segment) indexBatch(ix *segIndexes, h batch.Header, pos int64) {
	rel := uint32(h.BaseOffset - s.base)
	if s.firstTs == noTimestamp {
		s.firstTs = h.MaxTimestamp
	}
	if h.MaxTimestamp > s.maxTs.Load() {
		s.maxTs.Store(h.MaxTimestamp)
	}
	s.sinceEntry += h.Size()
	if s.sinceEntry >= s.cfg.IndexIntervalBytes && ix.off.room(1) {
		_ = ix.off.append(rel, uint32(pos))
		// Keep one time index slot for finalizeIndexes.
		if ts := s.maxTs.Load(); ts > s.lastTixTs && ix.tim.room(2) {
			_ = ix.tim.append(ts, rel)
			s.lastTixTs = ts
		}
		s.sinceEntry = 0
	}
	s.lastBatchRel = rel
	s.next.Store(h.LastOffset() + 1)
}

// finalizeIndexes records the segment's largest timestamp in the time index
// (retention reads it from there after a reopen) and trims both files.
func (s *segment) finalizeIndexes(ix *segIndexes) {
	if ts := s.maxTs.Load(); ts > s.lastTixTs && ix.tim.room(1) {
		_ = ix.tim.append(ts, s.lastBatchRel)
		s.lastTixTs = ts
	}
	if s.indexShrunk {
		ix.off.writable, ix.tim.writable = false, false
		for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
			if err := s.cfg.FS.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.cfg.Logger.Warn("remove truncated index", "segment", s.path, "err", err)
			}
		}
	} else if err := errors.Join(ix.off.trim(), ix.tim.trim()); err != nil {
		s.cfg.Logger.Warn("trim index", "segment", s.path, "err", err)
	}
	// Give back blocks reserved past the data (also those a crash left).
	if err := s.log.Truncate(s.size.Load()); err != nil {
		s.cfg.Logger.Warn("release reserved blocks", "segment", s.path, "err", err)
	}
	s.reserved = 0
}

// recomputeWriterState rebuilds the writer's bookkeeping from the indexes and
// the batches after the last index entry.
func (s *segment) recomputeWriterState(ix *segIndexes) error {
	s.resetWriterState()
	var start uint32
	if n := ix.off.entries(); n > 0 {
		_, start = ix.off.at(n - 1)
	}
	if ts, _, ok := ix.tim.last(); ok {
		s.lastTixTs = ts
		s.maxTs.Store(ts)
	}
	sc := newScanner(s.log, 0, s.size.Load(), lookupBufSize, false)
	if sc.next() {
		s.firstTs = sc.hdr.MaxTimestamp
	}
	sc = newScanner(s.log, int64(start), s.size.Load(), lookupBufSize, false)
	for sc.next() {
		h := sc.hdr
		if h.MaxTimestamp > s.maxTs.Load() {
			s.maxTs.Store(h.MaxTimestamp)
		}
		s.lastBatchRel = uint32(h.BaseOffset - s.base)
		s.next.Store(h.LastOffset() + 1)
		if sc.batchPos > int64(start) {
			s.sinceEntry += h.Size()
		}
	}
	if sc.err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path, sc.err)
	}
	return nil
}

// shouldRoll reports whether a batch must go to a new segment under the
// log's current segment.bytes and segment.ms (cfg, read under the log's
// mu), which may have changed since this segment was made.
func (s *segment) shouldRoll(h batch.Header, nowMs int64, cfg *Config) bool {
	size := s.size.Load()
	if size == 0 {
		return false
	}
	ix := s.ix.Load()
	waited := nowMs - s.created
	if s.firstTs >= 0 {
		waited = h.MaxTimestamp - s.firstTs
	}
	return size+h.Size() > cfg.SegmentBytes ||
		h.LastOffset()-s.base > math.MaxUint32 ||
		ix == nil || !ix.off.room(1) || !ix.tim.room(2) ||
		waited > cfg.SegmentMs.Milliseconds()
}

// append writes one batch at the end. A failed write is cut away so that the
// file holds only whole batches; if even that fails the error wraps
// ErrLogFailed.
func (s *segment) append(b []byte, h batch.Header) error {
	ix, err := s.indexes()
	if err != nil {
		return err
	}
	pos := s.size.Load()
	if end := pos + h.Size(); end > s.reserved {
		chunk := min(reserveMax, max(reserveMin, pos))
		n := min(max(chunk, end-s.reserved), max(s.cfg.SegmentBytes-s.reserved, end-s.reserved))
		reserve(s.log, s.reserved, n)
		s.reserved += n
	}
	if _, err := s.log.WriteAt(b, pos); err != nil {
		err = fmt.Errorf("storage: write %s at %d: %w", s.log.Name(), pos, err)
		if terr := s.log.Truncate(pos); terr != nil {
			return errors.Join(err, fmt.Errorf("%w: cutting the partial write: %w", ErrLogFailed, terr))
		}
		return err
	}
	s.indexBatch(ix, h, pos)
	s.size.Store(pos + h.Size())
	return nil
}

// find returns the position and header of the first batch below end whose
// last offset is >= offset; ok is false when there is none.
func (s *segment) find(offset, end int64) (pos int64, h batch.Header, ok bool, err error) {
	ix, err := s.indexes()
	if err != nil {
		return 0, h, false, err
	}
	rel := min(max(offset-s.base, 0), math.MaxUint32)
	_, p := ix.off.lookup(uint32(rel))
	sc := newScanner(s.log, int64(p), end, lookupBufSize, false)
	defer sc.close()
	for sc.next() {
		if sc.hdr.LastOffset() >= offset {
			return sc.batchPos, sc.hdr, true, nil
		}
	}
	if sc.err != nil {
		return 0, h, false, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path, sc.err)
	}
	return end, h, false, nil
}

// positionOf returns the position of the batch holding offset, or the size
// when offset is at or past the segment's end: the byte bound of "below
// offset".
func (s *segment) positionOf(offset int64) (int64, error) {
	size := s.size.Load()
	if offset >= s.next.Load() {
		return size, nil
	}
	pos, _, _, err := s.find(offset, size)
	return pos, err
}

// read returns the byte range of whole batches starting at the batch that
// holds offset, at most maxBytes long unless the first batch alone is bigger,
// and ending at or before end.
func (s *segment) read(offset, maxBytes, end int64) (int64, int64, error) {
	start, first, ok, err := s.find(offset, end)
	if err != nil || !ok {
		return 0, 0, err
	}
	if maxBytes >= end-start {
		return start, end - start, nil
	}
	limit := start + maxBytes
	if start+first.Size() >= limit {
		return start, first.Size(), nil // the first batch fills the limit
	}
	ix, _ := s.indexes() // loaded by find
	p := max(int64(ix.off.lookupPosition(uint32(limit))), start)
	last := p
	sc := newScanner(s.log, p, end, lookupBufSize, false)
	defer sc.close()
	for sc.next() {
		e := sc.batchPos + sc.hdr.Size()
		if e > limit {
			break
		}
		last = e
	}
	if sc.err != nil {
		return 0, 0, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path, sc.err)
	}
	if last == start {
		last = start + first.Size()
	}
	return start, last - start, nil
}

// maxTimestamp returns the largest batch timestamp in the segment.
func (s *segment) maxTimestamp() (int64, error) {
	if _, err := s.indexes(); err != nil {
		return noTimestamp, err
	}
	return s.maxTs.Load(), nil
}

// truncateTo removes every batch holding an offset >= offset and returns the
// new next offset.
func (s *segment) truncateTo(offset int64) (int64, error) {
	pos, h, ok, err := s.find(offset, s.size.Load())
	if err != nil || !ok {
		return s.next.Load(), err
	}
	if err := s.log.Truncate(pos); err != nil {
		return 0, fmt.Errorf("storage: truncate %s to %d: %w", s.log.Name(), pos, err)
	}
	ix, _ := s.indexes()
	rel := uint32(h.BaseOffset - s.base)
	s.indexShrunk = true
	ix.off.truncateTo(rel)
	ix.tim.truncateTo(rel)
	s.size.Store(pos)
	s.reserved = 0
	next := min(offset, h.BaseOffset)
	if pos == 0 {
		next = s.base
	}
	if err := s.recomputeWriterState(ix); err != nil {
		return 0, err
	}
	s.next.Store(max(next, s.base))
	return s.next.Load(), nil
}

// sync makes the log file durable, and the indexes with it when withIndexes.
func (s *segment) sync(withIndexes bool) error {
	err := s.cfg.Syncer.Sync(s.log) // the file's own fsync without a Syncer
	if withIndexes && err == nil {
		if ix := s.ix.Load(); ix != nil {
			err = errors.Join(ix.off.sync(), ix.tim.sync())
		}
	}
	if err != nil {
		return fmt.Errorf("storage: sync %s: %w", s.path, err)
	}
	return nil
}

// acquire takes a reader's reference; false means the segment is gone.
func (s *segment) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the files.
func (s *segment) release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.ixMu.Lock()
	defer s.ixMu.Unlock()
	if ix := s.ix.Load(); ix != nil {
		if s.deleted {
			ix.closeRaw()
		} else if err := ix.close(); err != nil {
			s.cfg.Logger.Warn("close index", "segment", s.path, "err", err)
		}
	}
	for _, ix := range s.retired {
		ix.closeRaw()
	}
	_ = s.log.Close()
}

// remove unlinks the segment's files; open descriptors keep working for
// readers until release.
func (s *segment) remove() error {
	s.ixMu.Lock()
	already := s.deleted
	s.deleted = true
	s.ixMu.Unlock()
	if already {
		return nil // a new segment may have the name now
	}
	var errs []error
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := s.cfg.FS.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// crash closes descriptors as a killed process would: nothing trimmed.
func (s *segment) crash() {
	if ix := s.ix.Load(); ix != nil {
		ix.closeRaw()
	}
	for _, ix := range s.retired {
		ix.closeRaw()
	}
	_ = s.log.Close()
}
