package partition

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch"
)

// LeaderEpoch returns the epoch this replica leads or follows in.
func (p *Partition) LeaderEpoch() int32 { return p.leaderEpoch.Load() }

// LatestEpoch returns the newest epoch in this replica's log.
func (p *Partition) LatestEpoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epochs.latest()
}

// ErrStaleFetch means a fetch reply no longer fits this replica: it was
// asked for at another log end, or in another leader epoch (the replica
// truncated, or follows a new leader since). It is dropped, never applied.
var ErrStaleFetch = errors.New("partition: stale fetch response")

// AppendReplicated appends batches fetched from the leader, offsets and
// epochs as the leader wrote them, and keeps the epoch cache and producer
// state in step. fetchOffset and epoch are what the fetch was sent with:
// the reply is applied only if the log still ends there and the replica
// still follows in that epoch.
func (p *Partition) AppendReplicated(region []byte, fetchOffset int64, epoch int32) (storage.AppendResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur := p.leaderEpoch.Load(); cur != epoch {
		return storage.AppendResult{}, fmt.Errorf("%w: fetched in epoch %d, now %d", ErrStaleFetch, epoch, cur)
	}
	if end := p.log.LogEndOffset(); end != fetchOffset {
		return storage.AppendResult{}, fmt.Errorf("%w: fetched at %d, log now ends at %d", ErrStaleFetch, fetchOffset, end)
	}
	res, err := p.log.AppendReplicated(region)
	it := batch.NewIter(region)
	for it.Next() {
		h := it.Header()
		if res.BaseOffset < 0 || h.BaseOffset > res.LastOffset {
			break
		}
		if aerr := p.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset); aerr != nil && err == nil {
			err = aerr
		}
		switch {
		case h.Idempotent() && !h.Control():
			p.record(h, p.log.ResultFor(h))
		case h.Control() && h.ProducerID >= 0:
			p.raiseEpoch(h.ProducerID, h.ProducerEpoch)
		}
		if terr := p.txns.apply(h, it.Batch()); terr != nil && err == nil {
			err = terr
		}
	}
	p.publishLSO()
	p.logGen = p.log.Generation()
	return res, err
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <=
// epoch this replica knows and the offset where it ended.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epochs.endOffsetFor(epoch, p.log.LogEndOffset())
}

// ErrBelowHighWatermark means a truncation would cut records this replica
// knows to be committed. Only a topic that allows unclean leader election
// may do that: otherwise the leader asking for it has lost acknowledged
// records, and following it would lose them here too.
var ErrBelowHighWatermark = errors.New("partition: truncation below the high watermark refused")

// TruncateTo cuts the log where it diverges from the leader's, with the
// epoch cache and producer state. It never cuts below the high watermark
// unless the topic allows unclean leader election.
func (p *Partition) TruncateTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roleMu.Lock()
	unclean := p.role.Unclean
	p.roleMu.Unlock()
	if hw := p.hw.Load(); offset < hw && !unclean {
		return fmt.Errorf("%w: %s-%d to %d, high watermark %d", ErrBelowHighWatermark, p.cfg.Topic, p.cfg.Partition, offset, hw)
	}
	if err := p.log.TruncateTo(offset); err != nil {
		return err
	}
	if err := p.epochs.truncateFromEnd(p.log.LogEndOffset()); err != nil {
		return err
	}
	p.logGen = p.log.Generation()
	if err := p.rebuildProducersLocked(); err != nil {
		return err
	}
	if p.hw.Load() > p.log.LogEndOffset() {
		p.hw.Store(p.log.LogEndOffset())
	}
	return nil
}

// ResetTo empties the log and restarts it at offset (the leader's log
// starts above this replica's end).
func (p *Partition) ResetTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.log.Reset(offset); err != nil {
		return err
	}
	p.producers = map[int64]*producerState{}
	p.txns = newTxnState()
	p.publishLSO()
	p.logGen = p.log.Generation()
	p.hw.Store(offset)
	return p.epochs.reset()
}

// SetHighWatermark raises the high watermark: the leader to min LEO over
// the ISR, a follower to what the leader said. It never lowers it; only
// truncation does.
func (p *Partition) SetHighWatermark(hw int64) {
	for {
		old := p.hw.Load()
		if hw <= old {
			return
		}
		if p.hw.CompareAndSwap(old, hw) {
			break
		}
	}
	p.hwChanged.Broadcast()
	if p.notifyChange != nil {
		p.notifyChange()
	}
}

// RequestFlush starts an fsync of everything appended so far, without
// waiting for it (a follower flushes all the partitions of a fetch at once).
func (p *Partition) RequestFlush() {
	if p.cfg.SyncAcks {
		p.log.RequestFlush()
	}
}

// FlushReplicated makes what a follower appended durable before it fetches
// again, when acks wait for fsync: its next fetch offset is what the leader
// counts it for.
func (p *Partition) FlushReplicated(ctx context.Context) error {
	if !p.cfg.SyncAcks {
		return nil
	}
	return p.log.Flush(ctx)
}

// DurableOffset returns the offset below which the log is fsynced.
func (p *Partition) DurableOffset() int64 { return p.log.DurableOffset() }

// ReadReplica reads for a follower: up to the log end, not the high
// watermark.
func (p *Partition) ReadReplica(offset, maxBytes int64) (storage.Region, error) {
	return p.log.Read(offset, maxBytes, -1)
}
