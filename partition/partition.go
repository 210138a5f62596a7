package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/mlog/mlog/internal/notify"
	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch"
)

// Config says where a partition lives and how it acknowledges.
type Config struct {
	Topic     string
	Partition int32
	Dir       string
	Log       storage.Config
	// SyncAcks makes acks=1/all produces wait for fsync, and counts a
	// leader's own log end as its durable offset for the high watermark.
	// Off, the page cache is trusted, as in Kafka.
	SyncAcks bool
	Logger   *slog.Logger
}

// Partition is one replica of one partition.
type Partition struct {
	cfg Config
	log *storage.Log

	mu        sync.Mutex // producer state and epochs; serialises writes
	closed    bool       // Close ran (under mu): the snapshot is written once
	producers map[int64]*producerState
	txns      txnState // open and aborted transactions (txn.go)
	logGen    uint64   // the log's truncation generation the state matches
	epochs    *epochCache
	// firstOpen is where the oldest open transaction starts, -1 for none
	// (LastStableOffset).
	firstOpen atomic.Int64

	leaderEpoch atomic.Int32
	hw          atomic.Int64
	savedHW     atomic.Int64 // the high watermark partition.state holds
	hwChanged   notify.Notifier
	roleState
	notifyChange func() // the broker's change callback, nil when none
}

// ErrInvalidConfig means a Config failed Validate.
var ErrInvalidConfig = errors.New("partition: invalid config")

// Validate checks the settings (the log's too) and fills the loggers.
func (c *Config) Validate() error {
	switch {
	case c.Topic == "" || c.Dir == "":
		return fmt.Errorf("%w: topic and dir are required", ErrInvalidConfig)
	case c.Partition < 0:
		return fmt.Errorf("%w: partition %d", ErrInvalidConfig, c.Partition)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Log.Logger == nil {
		c.Log.Logger = c.Logger
	}
	return c.Log.Validate()
}

// Open opens (or creates) the partition's log and restores its producer
// state: from the snapshot of a clean close (snapshot.go), else by
// replaying the log's batch headers.
func Open(cfg Config) (*Partition, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var self atomic.Pointer[Partition]
	notifyChange := cfg.Log.OnChange
	cfg.Log.OnChange = func() {
		// A leader's high watermark follows its own end (or durable
		// offset), bounded by its followers'. Runs with the log's lock
		// held.
		if p := self.Load(); p != nil {
			p.updateHighWatermark()
		}
		if notifyChange != nil {
			notifyChange()
		}
	}
	l, err := storage.Open(cfg.Dir, cfg.Log)
	if err != nil {
		return nil, err
	}
	epochs, err := loadEpochCache(cfg.Dir)
	if err == nil {
		// Recovery may have cut a torn tail: epochs starting beyond the
		// recovered end name offsets this replica no longer has.
		err = epochs.truncateFromEnd(l.LogEndOffset())
	}
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("partition %s-%d: %w", cfg.Topic, cfg.Partition, err)
	}
	p := &Partition{cfg: cfg, log: l, producers: map[int64]*producerState{}, txns: newTxnState(), logGen: l.Generation(), epochs: epochs, notifyChange: notifyChange}
	p.firstOpen.Store(-1)
	p.leaderEpoch.Store(max(epochs.latest(), 0))
	hw := loadHighWatermark(cfg.Dir)
	p.savedHW.Store(hw)
	p.hw.Store(min(hw, l.LogEndOffset()))
	self.Store(p)
	if p.loadProducerSnapshot() {
		return p, nil
	}
	if err := p.rebuildProducersLocked(); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("partition %s-%d: rebuild producer state: %w", cfg.Topic, cfg.Partition, err)
	}
	return p, nil
}

// Topic returns the topic name.
func (p *Partition) Topic() string { return p.cfg.Topic }

// ID returns the partition number.
func (p *Partition) ID() int32 { return p.cfg.Partition }

// Log returns the underlying log.
func (p *Partition) Log() *storage.Log { return p.log }

// HighWatermark returns the offset below which consumers may read.
func (p *Partition) HighWatermark() int64 {
	return min(p.hw.Load(), p.log.LogEndOffset())
}

// LogStartOffset returns the first readable offset.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LogEndOffset returns the next offset to be written.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

// ProduceResult says where a produced batch went.
type ProduceResult struct {
	BaseOffset     int64
	LogStartOffset int64
	Duplicate      bool // a retried batch answered with its original offset
}

// Appended is a batch Append wrote (or found already written); WaitAck
// finishes the produce.
type Appended struct {
	res storage.AppendResult
	dup bool
}

// Append validates and appends one producer batch. It must be called in the
// order the producer sent its batches (the protocol layer calls it on the
// connection's reader goroutine); a retried idempotent batch is not written
// again but answered with its original offsets.
func (p *Partition) Append(b []byte) (Appended, error) {
	h, err := batch.Validate(b)
	if err != nil {
		return Appended{}, err
	}
	if err := batch.CheckProducerBatch(h); err != nil {
		return Appended{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writableLocked(); err != nil {
		return Appended{}, err
	}
	if h.Idempotent() {
		d, err := p.producers[h.ProducerID].check(h)
		if err != nil {
			return Appended{}, err
		}
		if d != nil {
			return Appended{res: d.res, dup: true}, nil
		}
	}
	if h.Transactional() {
		p.holdLSOLocked(h.ProducerID)
	}
	res, err := p.log.Append(b, p.leaderEpoch.Load())
	if err != nil {
		p.publishLSO()
		return Appended{}, err
	}
	if h.Idempotent() {
		p.record(h, res)
	}
	if h.Transactional() {
		p.txns.batch(h.ProducerID, res.BaseOffset)
		p.publishLSO()
	}
	return Appended{res: res}, nil
}

// writableLocked is what every write as the leader checks first: this
// replica leads, and its producer state matches the log.
func (p *Partition) writableLocked() error {
	if err := p.leaderLocked(); err != nil {
		return err
	}
	return p.syncProducersLocked()
}

// leaderLocked refuses unless this replica leads. Checked under mu, where
// SetRole publishes a role together with its epoch: a replica that stopped
// leading since the caller's CheckLeader takes nothing.
func (p *Partition) leaderLocked() error {
	p.roleMu.Lock()
	r := p.role
	p.roleMu.Unlock()
	if !r.Leader() {
		return fmt.Errorf("%w: %s-%d is led by broker %d", ErrNotLeader, p.cfg.Topic, p.cfg.Partition, r.LeaderID)
	}
	return nil
}

// syncProducersLocked reads the producer and transaction state from the
// log again when the log was cut since (a failed fsync, a follower
// truncation): what it remembers may be gone.
func (p *Partition) syncProducersLocked() error {
	if gen := p.log.Generation(); gen != p.logGen {
		if err := p.rebuildProducersLocked(); err != nil {
			return err
		}
		p.logGen = gen
	}
	return nil
}

// WaitAck waits as acks asks: with SyncAcks, acks 1 and -1 wait for fsync;
// acks -1 also waits for the high watermark to pass the batch (every
// in-sync replica has it; a leader alone in its ISR needs only its own
// copy, durable when SyncAcks is on).
func (p *Partition) WaitAck(ctx context.Context, a Appended, acks int16) (ProduceResult, error) {
	if p.cfg.SyncAcks {
		if acks == 0 {
			p.log.RequestFlush() // so the high watermark follows
		} else {
			if err := p.waitDurable(ctx, a.res); err != nil {
				return ProduceResult{}, err
			}
			// The log wakes durability waiters before its change callback
			// moves the high watermark: move it here, so that a leader
			// alone in its ISR has made an acks=1 batch readable when it
			// answers.
			p.updateHighWatermark()
		}
	}
	if acks == -1 {
		if err := p.waitHighWatermark(ctx, a.res); err != nil {
			return ProduceResult{}, err
		}
	}
	return ProduceResult{BaseOffset: a.res.BaseOffset, LogStartOffset: p.log.LogStartOffset(), Duplicate: a.dup}, nil
}

// ErrTruncatedBeforeCommit means a batch waiting for the high watermark was
// cut from the log first (this replica stopped leading and followed
// another): the producer must retry.
var ErrTruncatedBeforeCommit = errors.New("partition: batch truncated before it was committed")

// ErrNotEnoughReplicasAfterAppend means the batch was written but the ISR
// fell below min.insync.replicas before it was committed
// (NOT_ENOUGH_REPLICAS_AFTER_APPEND): the producer must retry.
var ErrNotEnoughReplicasAfterAppend = errors.New("partition: not enough in-sync replicas after append")

// waitHighWatermark waits until the batch is committed: the high watermark
// passed it while this replica still leads, the batch is still the one at
// its offsets, and the ISR still meets min.insync.replicas.
func (p *Partition) waitHighWatermark(ctx context.Context, res storage.AppendResult) error {
	for {
		ch := p.hwChanged.Wait()
		if p.log.Truncated(res) {
			return ErrTruncatedBeforeCommit
		}
		if err := p.CheckLeader(-1); err != nil {
			return err // leadership moved: the new leader decides
		}
		if p.hw.Load() > res.LastOffset {
			if p.CheckMinISR() != nil {
				return ErrNotEnoughReplicasAfterAppend
			}
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Produce is Append then WaitAck.
func (p *Partition) Produce(ctx context.Context, b []byte, acks int16) (ProduceResult, error) {
	a, err := p.Append(b)
	if err != nil {
		return ProduceResult{}, err
	}
	return p.WaitAck(ctx, a, acks)
}

func (p *Partition) waitDurable(ctx context.Context, res storage.AppendResult) error {
	if p.log.DurableOffset() > res.LastOffset {
		return nil
	}
	return p.log.WaitDurable(ctx, res)
}

// Read returns whole batches from offset up to the high watermark. An offset
// between the high watermark and the log end gives an empty region.
func (p *Partition) Read(offset, maxBytes int64) (storage.Region, error) {
	hw := p.HighWatermark()
	if offset > hw && offset <= p.log.LogEndOffset() {
		return storage.Region{}, nil
	}
	return p.log.Read(offset, maxBytes, hw)
}

// ReadCommitted is Read for read_committed consumers: up to lso, the last
// stable offset the caller read (and answers with), not the high
// watermark.
func (p *Partition) ReadCommitted(offset, maxBytes, lso int64) (storage.Region, error) {
	if offset > lso && offset <= p.log.LogEndOffset() {
		return storage.Region{}, nil
	}
	return p.log.Read(offset, maxBytes, lso)
}

// Special ListOffsets timestamps.
const (
	LatestTimestamp   = -1
	EarliestTimestamp = -2
	MaxTimestamp      = -3
)

// ErrNoOffset means no record has a timestamp at or after the one asked for.
var ErrNoOffset = errors.New("partition: no offset for timestamp")

// OffsetFor answers ListOffsets: the earliest or latest (high watermark)
// offset, or the first offset whose timestamp is >= ts.
func (p *Partition) OffsetFor(ts int64) (int64, error) {
	switch ts {
	case LatestTimestamp:
		return p.HighWatermark(), nil
	case EarliestTimestamp:
		return p.log.LogStartOffset(), nil
	}
	off, ok, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return 0, err
	}
	if !ok || off >= p.HighWatermark() {
		return 0, ErrNoOffset
	}
	return off, nil
}

// CheckpointHighWatermark writes the high watermark to partition.state
// when it moved since the last write. The broker calls it periodically (as
// Kafka's replica.high.watermark.checkpoint.interval.ms), so a replica
// killed without a clean close still knows, roughly, what was committed.
func (p *Partition) CheckpointHighWatermark() error {
	hw := p.hw.Load()
	if hw == p.savedHW.Load() {
		return nil
	}
	if err := saveHighWatermark(p.cfg.Dir, hw); err != nil {
		return err
	}
	p.savedHW.Store(hw)
	return nil
}

// Close checkpoints the high watermark and closes the log.
func (p *Partition) Close() error {
	p.mu.Lock()
	var snap error
	if !p.closed {
		p.closed = true
		// The snapshot holds no transaction state: with any, the next
		// open replays the log instead.
		p.txns.prune(p.log.LogStartOffset())
		if len(p.txns.open) == 0 && len(p.txns.aborted) == 0 {
			snap = p.saveProducerSnapshot()
		}
	}
	p.mu.Unlock()
	// A closed replica leads nothing: produces waiting for the high
	// watermark (a replica a reassignment moved away while it led) are
	// answered NOT_LEADER now, not at their timeout.
	p.roleMu.Lock()
	p.role.LeaderID = -1
	p.roleMu.Unlock()
	p.hwChanged.Broadcast()
	if snap != nil {
		p.cfg.Logger.Warn("producer snapshot not written; the next open replays the log", "err", snap)
	}
	return errors.Join(p.CheckpointHighWatermark(), p.log.Close())
}
