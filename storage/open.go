package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Open opens the log in dir, creating it when empty. After a clean Close it
// maps nothing and scans only the tail of the active segment. After a crash
// it checks every batch of every segment that may hold bytes not known to be
// durable (those ending above the recovery point, and the active one), cuts
// the log at the first torn or corrupt batch, and rebuilds those segments'
// indexes.
func Open(dir string, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fsys := cfg.FS
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	l := &Log{dir: dir, cfg: cfg, log: cfg.Logger.With("dir", dir),
		flushReq: make(chan struct{}, 1), stop: make(chan struct{})}
	seg := cfg
	l.segCfg = &seg
	l.maxBatch.Store(cfg.MaxBatchBytes)
	bases, err := l.listSegments()
	if err != nil {
		return nil, err
	}
	ckpt, err := readCheckpoint(fsys, dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) || len(bases) > 0 {
			l.log.Warn("no usable checkpoint: recovering every segment", "err", err)
		}
		ckpt = checkpoint{}
	}
	segs, err := l.openSegments(bases, ckpt)
	if err != nil {
		for _, s := range segs {
			s.release()
		}
		return nil, err
	}
	if end := segs[len(segs)-1].next.Load(); ckpt.logStartOffset > end {
		// A reset to a later offset was interrupted: the checkpoint holds
		// the new start, the old segments were still on disk.
		l.log.Warn("log ends below its start offset: finishing an interrupted reset", "log_end_offset", end, "log_start_offset", ckpt.logStartOffset)
		for _, s := range segs {
			_ = s.remove()
			s.release()
		}
		ns, err := createSegment(l.segCfg, dir, ckpt.logStartOffset)
		if err != nil {
			return nil, err
		}
		segs = []*segment{ns}
	}
	l.publish(segs)
	last := segs[len(segs)-1]
	l.leo.Store(last.next.Load())
	l.start.Store(min(max(ckpt.logStartOffset, segs[0].base), l.leo.Load()))
	l.flushed.Store(l.leo.Load())
	l.recoveryPoint = l.leo.Load()
	// From here on the log is in use: a crash must be recovered from.
	if err := writeCheckpoint(fsys, dir, l.checkpointLocked(false)); err != nil {
		_ = l.closeFiles()
		return nil, err
	}
	l.wg.Add(1)
	go l.runFlusher()
	return l, nil
}

// listSegments returns the segment bases present in dir, removing leftovers
// of interrupted writes and index files without a log.
func (l *Log) listSegments() ([]int64, error) {
	ents, err := l.cfg.FS.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("storage: list %s: %w", l.dir, err)
	}
	logs := map[int64]bool{}
	var leftovers []string
	var indexes []int64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			leftovers = append(leftovers, name)
			continue
		}
		ext := filepath.Ext(name)
		base, err := strconv.ParseInt(strings.TrimSuffix(name, ext), 10, 64)
		if err != nil || len(name)-len(ext) != 20 || base < 0 {
			continue
		}
		switch ext {
		case logSuffix:
			logs[base] = true
		case indexSuffix, timeIndexSuffix:
			indexes = append(indexes, base)
		}
	}
	for _, base := range indexes {
		if !logs[base] {
			l.removeFiles(base)
		}
	}
	for _, name := range leftovers {
		if err := l.cfg.FS.Remove(filepath.Join(l.dir, name)); err != nil {
			l.log.Warn("remove leftover", "file", name, "err", err)
		}
	}
	bases := make([]int64, 0, len(logs))
	for b := range logs {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	return bases, nil
}

func (l *Log) openSegments(bases []int64, ckpt checkpoint) ([]*segment, error) {
	cfg := l.segCfg
	// Segments wholly below the log start were being deleted by retention.
	for len(bases) > 1 && bases[1] <= ckpt.logStartOffset {
		l.removeFiles(bases[0])
		bases = bases[1:]
	}
	if len(bases) == 0 {
		s, err := createSegment(cfg, l.dir, ckpt.logStartOffset)
		if err != nil {
			return nil, err
		}
		return []*segment{s}, nil
	}
	segs := make([]*segment, 0, len(bases))
	for _, b := range bases {
		s, err := openSegment(cfg, l.dir, b)
		if err != nil {
			return segs, err
		}
		segs = append(segs, s)
	}
	for i, s := range segs[:len(segs)-1] {
		s.next.Store(segs[i+1].base)
	}
	// Recovery starts at the first segment that may hold bytes not known to
	// be durable; after a clean shutdown only the active one is looked at.
	first := len(segs) - 1 // first segment to check batch by batch
	if !ckpt.clean {
		for i := range segs {
			if i == len(segs)-1 || segs[i+1].base > ckpt.recoveryPoint {
				first = i
				break
			}
		}
	}
	for i := first; i < len(segs); i++ {
		s := segs[i]
		if ckpt.clean {
			if err := l.openActive(s); err == nil {
				continue
			} else {
				l.log.Warn("active segment does not check out after a clean shutdown; recovering it", "segment", s.path, "err", err)
			}
		}
		minBase := s.base
		if i > 0 {
			minBase = max(minBase, segs[i-1].next.Load())
		}
		cut, err := l.recoverSegment(s, minBase, i == len(segs)-1)
		if err != nil {
			return segs, err
		}
		if cut && i < len(segs)-1 {
			// Everything after a cut is unreachable: offsets must stay dense.
			for _, later := range segs[i+1:] {
				l.log.Warn("removing segment after a torn one", "segment", later.path)
				_ = later.remove()
				later.release()
			}
			segs = segs[:i+1]
			break
		}
	}
	return segs, nil
}

// openActive maps the last segment's indexes writable after a clean shutdown
// and finds its end from the last index entry.
func (l *Log) openActive(s *segment) error {
	s.ixMu.Lock()
	defer s.ixMu.Unlock()
	s.next.Store(math.MaxInt64) // unknown until scanned: lets index checks pass
	ix, err := s.loadIndexes(indexWritable)
	if err == nil {
		s.next.Store(s.base)
		if err = s.recomputeWriterState(ix); err != nil {
			ix.closeRaw()
		}
	}
	if err != nil {
		s.next.Store(s.base)
		return err
	}
	s.ix.Store(ix)
	return nil
}

// recoverSegment checks every batch (length, CRC, offsets ascending from
// minBase), cuts the file at the first bad one and rebuilds the indexes.
func (l *Log) recoverSegment(s *segment, minBase int64, active bool) (cut bool, err error) {
	ix, err := s.openIndexes(indexFresh)
	if err != nil {
		return false, err
	}
	s.resetWriterState()
	s.next.Store(s.base)
	size := s.size.Load()
	sc := newScanner(s.log, 0, size, recoverBufSize, true)
	expect := minBase
	for sc.next() {
		h := sc.hdr
		if h.BaseOffset < expect || h.LastOffset()-s.base > math.MaxUint32 {
			sc.err = fmt.Errorf("%w: batch at %d has offsets %d..%d, expected from %d", errOffsetsOutOfOrder, sc.batchPos, h.BaseOffset, h.LastOffset(), expect)
			sc.pos = sc.batchPos
			break
		}
		s.indexBatch(ix, h, sc.batchPos)
		expect = h.LastOffset() + 1
	}
	valid := sc.pos // start of the first batch that failed, or the end
	if sc.err != nil && !damaged(sc.err) {
		ix.closeRaw()
		return false, sc.err
	}
	if valid < size {
		l.log.Warn("cutting torn or corrupt tail", "segment", s.path, "valid_bytes", valid, "file_bytes", size, "err", sc.err)
		if err := s.log.Truncate(valid); err != nil {
			ix.closeRaw()
			return false, fmt.Errorf("storage: cut %s at %d: %w", s.log.Name(), valid, err)
		}
		s.size.Store(valid)
		cut = true
	}
	if err := s.log.Sync(); err != nil {
		ix.closeRaw()
		return cut, fmt.Errorf("storage: sync %s: %w", s.log.Name(), err)
	}
	if !active && !cut {
		s.finalizeIndexes(ix)
		if err := ix.off.sync(); err != nil {
			ix.closeRaw()
			return cut, err
		}
		_ = ix.tim.sync()
	}
	s.ix.Store(ix)
	return cut, nil
}

func (l *Log) removeFiles(base int64) {
	p := filepath.Join(l.dir, segmentName(base))
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := l.cfg.FS.Remove(p + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("remove file", "file", p+suffix, "err", err)
		}
	}
}

// closeFiles closes every segment without writing anything.
func (l *Log) closeFiles() error {
	for _, s := range l.segments() {
		s.release()
	}
	return nil
}
