package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mlog/mlog/internal/notify"
	"github.com/mlog/mlog/storage/batch"
)

// Log is one partition replica's log: an ordered list of segments in one
// directory. One writer at a time appends, rolls, truncates and deletes
// (serialised by mu); any number of readers read concurrently without taking
// mu, from segment state published atomically after each write.
type Log struct {
	dir string
	// cfg is the current configuration: its settings that SetConfig
	// changes are written and read under mu (maxBatch mirrors one for
	// Append). Segments hold segCfg, a copy made when they were created
	// that never changes.
	cfg      Config
	segCfg   *Config
	maxBatch atomic.Int64
	log      *slog.Logger

	segs  atomic.Pointer[[]*segment] // immutable slices, replaced whole
	leo   atomic.Int64               // log end offset
	start atomic.Int64               // log start offset
	gen   atomic.Uint64              // bumped by every truncation
	shut  atomic.Bool                // Close started: readers stop retrying
	bad   atomic.Bool                // failed is set

	mu            sync.Mutex
	compactMu     sync.Mutex // one Compact at a time; taken before mu
	closed        bool
	failed        error        // set when a fault could not be undone
	truncs        []truncation // recent truncations, for durability waiters
	unflushed     []*segment   // rolled segments not fsynced yet
	recoveryPoint int64        // offsets below are durable with their indexes

	flushed  atomic.Int64    // offsets below are durable
	durable  notify.Notifier // broadcast when flushed moves or a sync fails
	appended notify.Notifier // broadcast when the log end offset moves
	flushReq chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
}

type truncation struct {
	gen uint64
	at  int64 // the log end offset after it
}

const keptTruncations = 64

// AppendResult says where a batch went.
type AppendResult struct {
	BaseOffset   int64
	LastOffset   int64
	MaxTimestamp int64
	gen          uint64
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// LogEndOffset returns the offset the next batch gets.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// LogStartOffset returns the first offset still readable.
func (l *Log) LogStartOffset() int64 { return l.start.Load() }

// ResultFor describes a batch already in the log (found by a scan) as if it
// had just been appended, so WaitDurable can wait for it.
func (l *Log) ResultFor(h batch.Header) AppendResult {
	return AppendResult{BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), MaxTimestamp: h.MaxTimestamp, gen: l.gen.Load()}
}

// Generation counts truncations: it changes whenever batches were removed
// from the end of the log, so state derived from the log must be rebuilt.
func (l *Log) Generation() uint64 { return l.gen.Load() }

// DurableOffset returns the offset below which every batch is fsynced.
func (l *Log) DurableOffset() int64 { return l.flushed.Load() }

func (l *Log) notifyChange() {
	if l.cfg.OnChange != nil {
		l.cfg.OnChange()
	}
}

// RequestFlush asks for an fsync without waiting for it, so that the durable
// offset follows appends nobody waits on.
func (l *Log) RequestFlush() { l.requestFlush() }

// DurableNotify returns a channel closed when the durable offset next moves
// (or a sync fails): a leader that keeps its high watermark at or below the
// durable offset waits on it.
func (l *Log) DurableNotify() <-chan struct{} { return l.durable.Wait() }

// AppendNotify returns a channel closed at the next append, truncation or
// close: long-polling readers wait on it instead of polling.
func (l *Log) AppendNotify() <-chan struct{} { return l.appended.Wait() }

// Size returns the bytes held by all segments.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range l.segments() {
		n += s.size.Load()
	}
	return n
}

// NumSegments returns how many segments the log has.
func (l *Log) NumSegments() int { return len(l.segments()) }

func (l *Log) segments() []*segment { return *l.segs.Load() }

func (l *Log) active() *segment {
	s := l.segments()
	return s[len(s)-1]
}

func (l *Log) publish(segs []*segment) { l.segs.Store(&segs) }

// Append validates a batch from a producer, gives it the next offsets and the
// leader epoch (rewriting b in place) and writes it. The batch is readable
// when Append returns; WaitDurable tells when it is fsynced.
func (l *Log) Append(b []byte, leaderEpoch int32) (AppendResult, error) {
	if max := l.maxBatch.Load(); int64(len(b)) > max {
		return AppendResult{}, fmt.Errorf("%w: %d bytes, max %d", ErrBatchTooLarge, len(b), max)
	}
	h, err := batch.Validate(b)
	if err != nil {
		return AppendResult{}, err
	}
	if err := batch.CheckProducerBatch(h); err != nil {
		return AppendResult{}, err
	}
	return l.appendAt(b, h, leaderEpoch)
}

// AppendBroker appends a batch the broker wrote itself for a transaction
// (a marker, a coordinator's transactional offset commit), as Append does
// a producer's but without the rules only producers keep (no control
// batches, sequences from 0).
func (l *Log) AppendBroker(b []byte, leaderEpoch int32) (AppendResult, error) {
	h, err := batch.Validate(b)
	if err != nil {
		return AppendResult{}, err
	}
	if h.RecordCount < 1 || h.LastOffsetDelta != h.RecordCount-1 {
		return AppendResult{}, fmt.Errorf("%w: recordCount %d, lastOffsetDelta %d", batch.ErrInvalidRecordCount, h.RecordCount, h.LastOffsetDelta)
	}
	return l.appendAt(b, h, leaderEpoch)
}

// appendAt gives a validated batch the next offsets and the leader epoch
// and writes it.
func (l *Log) appendAt(b []byte, h batch.Header, leaderEpoch int32) (AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return AppendResult{}, err
	}
	h.BaseOffset, h.PartitionLeaderEpoch = l.leo.Load(), leaderEpoch
	batch.SetBaseOffset(b, h.BaseOffset)
	batch.SetPartitionLeaderEpoch(b, leaderEpoch)
	if err := l.appendLocked(b, h); err != nil {
		return AppendResult{}, err
	}
	return AppendResult{BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), MaxTimestamp: h.MaxTimestamp, gen: l.gen.Load()}, nil
}

// AppendReplicated appends batches copied from a leader as they are, offsets
// and epochs included: each must pass its CRC and never start below the log
// end offset, so nothing written is overwritten. A batch may start above
// it: the leader's log has holes where its cleaner removed whole batches,
// also in a topic no longer compacted (cleanup.policy changed live), as
// Kafka's followers accept; a reply meant for another log end (a stale
// fetch) is refused by the partition, which checks the fetch offset. A
// partial batch at the end of b is ignored (fetch responses end that way). The result covers the batches written; on error, the
// batches before the bad one stay written.
func (l *Log) AppendReplicated(b []byte) (AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return AppendResult{}, err
	}
	res := AppendResult{BaseOffset: -1, LastOffset: -1, gen: l.gen.Load()}
	it := batch.NewIter(b)
	for it.Next() {
		h, err := batch.Validate(it.Batch())
		if err == nil && h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta)-1 {
			err = fmt.Errorf("%w: batch offsets from %d overflow", ErrOffsetMismatch, h.BaseOffset)
		}
		if leo := l.leo.Load(); err == nil && h.BaseOffset < leo {
			err = fmt.Errorf("%w: batch at %d, log end offset %d", ErrOffsetMismatch, h.BaseOffset, leo)
		}
		if err == nil {
			err = l.appendLocked(it.Batch(), h)
		}
		if err != nil {
			return res, err
		}
		if res.BaseOffset < 0 {
			res.BaseOffset = h.BaseOffset
		}
		res.LastOffset, res.MaxTimestamp = h.LastOffset(), max(res.MaxTimestamp, h.MaxTimestamp)
	}
	return res, it.Err()
}

func (l *Log) writableLocked() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("%w: %w", ErrLogFailed, l.failed)
	}
	return nil
}

// appendLocked writes one checked batch. Caller holds mu.
func (l *Log) appendLocked(b []byte, h batch.Header) error {
	seg := l.active()
	if h.LastOffset()-seg.base > math.MaxUint32 {
		// A replicated batch far above this segment: start one at its base
		// so relative offsets fit in the indexes.
		var err error
		if seg, err = l.rollLocked(h.BaseOffset); err != nil {
			return err
		}
	} else if seg.shouldRoll(h, l.cfg.Now().UnixMilli(), &l.cfg) {
		var err error
		if seg, err = l.rollLocked(l.leo.Load()); err != nil {
			return err
		}
	}
	if err := seg.append(b, h); err != nil {
		if errors.Is(err, ErrLogFailed) {
			_ = l.faultLocked(err)
		}
		return err
	}
	l.leo.Store(h.LastOffset() + 1)
	l.appended.Broadcast()
	l.notifyChange()
	return nil
}

// Roll closes the active segment to appends and starts a new one at the log
// end offset. An empty active segment is kept.
func (l *Log) Roll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if l.active().size.Load() == 0 {
		return nil
	}
	_, err := l.rollLocked(l.leo.Load())
	return err
}

func (l *Log) rollLocked(base int64) (*segment, error) {
	old := l.active()
	ns, err := createSegment(l.segCfg, l.dir, base)
	if err != nil {
		return nil, err
	}
	if ix := old.ix.Load(); ix != nil {
		old.finalizeIndexes(ix)
	}
	l.publish(append(slices.Clone(l.segments()), ns))
	l.unflushed = append(l.unflushed, old)
	l.requestFlush() // so that the recovery point follows soon
	l.log.Debug("rolled segment", "base", ns.base)
	return ns, nil
}

// TruncateTo removes every batch holding an offset >= offset (a follower
// does this where its log diverges from the leader's). A batch straddling
// offset goes whole. Truncating at or below the log start offset empties the
// log and restarts it at offset.
func (l *Log) TruncateTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset >= l.leo.Load() {
		return nil
	}
	if offset <= l.start.Load() {
		return l.resetLocked(max(offset, 0))
	}
	return l.truncateLocked(offset)
}

// Reset empties the log and restarts it at offset, as a follower does when
// the leader's log starts above its own end.
func (l *Log) Reset(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	return l.resetLocked(max(offset, 0))
}

func (l *Log) truncateLocked(offset int64) error {
	segs := l.segments()
	i := segmentFor(segs, offset)
	seg := segs[i]
	// The recovery point goes below the cut first: a crash part way must
	// make the next open check what is left, not trust it.
	if l.recoveryPoint > offset {
		l.recoveryPoint = offset
		if err := writeCheckpoint(l.cfg.FS, l.dir, l.checkpointLocked(false)); err != nil {
			return l.faultLocked(err)
		}
	}
	if i < len(segs)-1 {
		if err := seg.activate(); err != nil {
			return err
		}
		// Newest first: a crash part way leaves a shorter log whose
		// offsets are still dense, never a hole with data above it.
		l.publish(slices.Clone(segs[:i+1]))
		drop := slices.Clone(segs[i+1:])
		slices.Reverse(drop)
		l.dropSegmentsLocked(drop)
	}
	next, err := seg.truncateTo(offset)
	if err != nil {
		return l.faultLocked(err)
	}
	if err := seg.log.Sync(); err != nil {
		return l.faultLocked(err)
	}
	l.afterTruncateLocked(next, next)
	return nil
}

func (l *Log) resetLocked(offset int64) error {
	old := l.segments()
	// The new start goes to disk before the old segments go, so a crash in
	// between cannot bring them back.
	l.start.Store(offset)
	l.recoveryPoint = offset
	if err := writeCheckpoint(l.cfg.FS, l.dir, l.checkpointLocked(false)); err != nil {
		return l.faultLocked(err)
	}
	for _, s := range old {
		if err := s.remove(); err != nil {
			return l.faultLocked(err)
		}
	}
	ns, err := createSegment(l.segCfg, l.dir, offset)
	if err != nil {
		return l.faultLocked(err)
	}
	l.publish([]*segment{ns})
	l.dropSegmentsLocked(old)
	l.afterTruncateLocked(offset, 0)
	l.flushed.Store(offset) // nothing to sync: the checkpoint holds the start
	return nil
}

// afterTruncateLocked moves the end offsets back after batches from cut on
// were removed, and wakes waiters so they notice.
func (l *Log) afterTruncateLocked(next, cut int64) {
	l.leo.Store(next)
	if l.flushed.Load() > next {
		l.flushed.Store(next)
	}
	if l.recoveryPoint > next {
		l.recoveryPoint = next
		if err := writeCheckpoint(l.cfg.FS, l.dir, l.checkpointLocked(false)); err != nil {
			_ = l.faultLocked(err)
		}
	}
	g := l.gen.Add(1)
	l.truncs = append(l.truncs, truncation{gen: g, at: cut})
	if len(l.truncs) > keptTruncations {
		l.truncs = l.truncs[len(l.truncs)-keptTruncations:]
	}
	l.appended.Broadcast()
	l.durable.Broadcast()
	l.notifyChange()
}

// faultLocked records a fault that left the files in an unknown state.
func (l *Log) faultLocked(err error) error {
	l.failed = err
	l.bad.Store(true)
	l.durable.Broadcast()
	l.log.Error("log failed; reopen to recover", "err", err)
	return fmt.Errorf("%w: %w", ErrLogFailed, err)
}

// dropSegmentsLocked removes segments from disk; readers holding them keep
// reading until they release.
func (l *Log) dropSegmentsLocked(drop []*segment) {
	for _, s := range drop {
		l.unflushed = slices.DeleteFunc(l.unflushed, func(u *segment) bool { return u == s })
		if err := s.remove(); err != nil {
			l.log.Warn("remove segment", "segment", s.path, "err", err)
		}
		s.release()
	}
	if len(drop) > 0 {
		if err := l.cfg.FS.SyncDir(l.dir); err != nil {
			l.log.Warn("sync dir", "err", err)
		}
	}
}

func (l *Log) checkpointLocked(clean bool) checkpoint {
	return checkpoint{clean: clean, recoveryPoint: l.recoveryPoint, logStartOffset: l.start.Load()}
}

// segmentFor returns the index of the last segment whose base <= offset (0
// when offset is below them all).
func segmentFor(segs []*segment, offset int64) int {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset })
	return max(i-1, 0)
}

// Close flushes everything, records a clean shutdown so the next Open skips
// recovery, and closes the files (readers holding regions keep them open
// until they release).
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.shut.Store(true)
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()

	l.mu.Lock()
	defer l.mu.Unlock()
	active := l.active()
	if ix := active.ix.Load(); ix != nil {
		active.finalizeIndexes(ix)
	}
	var err error
	for _, s := range append(l.unflushed, active) {
		err = errors.Join(err, s.sync(true))
	}
	if err == nil && l.failed == nil {
		l.recoveryPoint = l.leo.Load()
		l.flushed.Store(l.leo.Load())
		err = writeCheckpoint(l.cfg.FS, l.dir, l.checkpointLocked(true))
	}
	l.unflushed = nil
	for _, s := range l.segments() {
		s.release()
	}
	l.appended.Broadcast()
	l.durable.Broadcast()
	l.notifyChange()
	return err
}
