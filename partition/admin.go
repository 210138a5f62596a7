package partition

// What Kafka's admin APIs change on an open replica: its log settings when
// the topic's configs are altered, and its log start offset (DeleteRecords
// on the leader, followed by every follower).

import (
	"errors"
	"fmt"

	"github.com/mlog/mlog/storage"
)

// ErrDeleteBeyondHighWatermark refuses a DeleteRecords offset past the high
// watermark (Kafka's OFFSET_OUT_OF_RANGE).
var ErrDeleteBeyondHighWatermark = errors.New("partition: delete records beyond the high watermark")

// SetLogConfig applies altered topic configs to the open log
// (storage.Log.SetConfig).
func (p *Partition) SetLogConfig(c storage.Config) error { return p.log.SetConfig(c) }

// DeleteRecords raises the log start offset to offset on the leader; -1
// means the high watermark. Offsets past the high watermark are refused:
// only committed records may be deleted. It returns the new log start
// offset (Kafka's low watermark as the leader sees it); followers follow
// when their next fetch carries it (FollowLogStart).
func (p *Partition) DeleteRecords(offset int64) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.leaderLocked(); err != nil {
		return -1, err
	}
	hw := p.HighWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return -1, fmt.Errorf("%w: offset %d, high watermark %d", ErrDeleteBeyondHighWatermark, offset, hw)
	}
	if err := p.log.AdvanceStart(offset); err != nil {
		return -1, err
	}
	p.txns.prune(p.log.LogStartOffset())
	return p.log.LogStartOffset(), nil
}

// FollowLogStart raises a follower's log start offset to the leader's (from
// a fetch response), never past its own high watermark: records the leader
// deleted go here too, as Kafka's followers do.
func (p *Partition) FollowLogStart(leaderStart int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	to := min(leaderStart, p.HighWatermark())
	if to <= p.log.LogStartOffset() {
		return nil
	}
	if err := p.log.AdvanceStart(to); err != nil {
		return err
	}
	p.txns.prune(p.log.LogStartOffset())
	return nil
}
