package partition

import (
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

// BecomeLeader makes this replica lead in epoch: batches it appends carry
// the epoch, which starts at the current log end.
func (p *Partition) BecomeLeader(epoch int32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leaderEpoch.Store(epoch)
	if err := p.epochs.assign(epoch, p.log.LogEndOffset()); err != nil {
		return fmt.Errorf("partition %s-%d: record epoch %d: %w", p.cfg.Topic, p.cfg.Partition, epoch, err)
	}
	return nil
}

// BecomeFollower makes this replica follow a leader in epoch.
func (p *Partition) BecomeFollower(epoch int32) {
	p.leaderEpoch.Store(epoch)
}

// AppendReplicated appends batches fetched from the leader, offsets and
// epochs as the leader wrote them, and keeps the epoch cache and producer
// state in step.
func (p *Partition) AppendReplicated(region []byte) (storage.AppendResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
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
		if h.Idempotent() && !h.Control() {
			p.record(h, p.log.ResultFor(h))
		}
	}
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

// TruncateTo cuts the log where it diverges from the leader's, with the
// epoch cache and producer state.
func (p *Partition) TruncateTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
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
	p.logGen = p.log.Generation()
	p.hw.Store(offset)
	return p.epochs.reset()
}

// SetHighWatermark raises the high watermark (replicated mode): the leader
// to min LEO over the ISR, a follower to what the leader said. It never
// lowers it; only truncation does.
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

// DurableOffset returns the offset below which the log is fsynced.
func (p *Partition) DurableOffset() int64 { return p.log.DurableOffset() }

// ReadReplica reads for a follower: up to the log end, not the high
// watermark.
func (p *Partition) ReadReplica(offset, maxBytes int64) (storage.Region, error) {
	return p.log.Read(offset, maxBytes, -1)
}
