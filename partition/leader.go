package partition

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Errors of leadership that the protocol maps to Kafka codes.
var (
	// ErrNotLeader means this replica does not lead the partition
	// (NOT_LEADER_OR_FOLLOWER).
	ErrNotLeader = errors.New("partition: not the leader")
	// ErrFencedEpoch means a request carried an older leader epoch than
	// this replica's (FENCED_LEADER_EPOCH).
	ErrFencedEpoch = errors.New("partition: fenced leader epoch")
	// ErrUnknownEpoch means a request carried a newer leader epoch than
	// this replica knows yet (UNKNOWN_LEADER_EPOCH).
	ErrUnknownEpoch = errors.New("partition: unknown leader epoch")
	// ErrNotEnoughReplicas means the ISR is smaller than
	// min.insync.replicas, so acks=all cannot be honoured
	// (NOT_ENOUGH_REPLICAS).
	ErrNotEnoughReplicas = errors.New("partition: not enough in-sync replicas")
)

// Role is what the cluster metadata says about this replica.
type Role struct {
	Self           int32
	LeaderID       int32
	Epoch          int32
	PartitionEpoch int32
	Replicas       []int32
	ISR            []int32
	MinISR         int
	// LagMax is replica.lag.time.max.ms: a follower that has not caught up
	// for this long no longer counts towards min.insync.replicas, even
	// before the controller has taken it out of the ISR (it may not be
	// able to: with most brokers down there is no Raft quorum).
	LagMax time.Duration
	// Unclean is unclean.leader.election.enable: a leader elected from
	// outside the ISR may hold less than was committed, and followers
	// then truncate below their high watermark to follow it.
	Unclean bool
}

// Leader reports whether the role is leadership. Epochs start at 1: the
// zero Role (no metadata yet) leads nothing.
func (r Role) Leader() bool { return r.LeaderID == r.Self && r.Epoch > 0 }

type follower struct {
	leo         int64     // the follower's log end, from its fetch offset
	caughtUp    time.Time // last time it had everything the leader had
	leaderEndAt int64     // the leader's end at its previous fetch
	everFetched bool
}

// roleState is the replica's role and, when leading, its followers'
// progress. roleMu is a leaf lock: it is taken with mu and the log's lock
// held (through the log's change callback), so nothing under it takes mu
// or calls the log's writers.
type roleState struct {
	roleMu    sync.Mutex
	role      Role
	followers map[int32]*follower
	// pending holds followers proposed for the ISR and not yet in it: the
	// high watermark waits for them too (Kafka's "maximal ISR"), so that
	// once the controller adds them they hold everything below it.
	pending []int32
}

// SetRole applies the metadata's view of this replica. A new leader epoch
// makes it lead (recording the epoch) or follow; an ISR or replica change
// updates what the leader tracks. The role and the epoch batches are
// stamped with change together under mu, so no produce in between is
// accepted as leader but stamped with the previous epoch.
func (p *Partition) SetRole(r Role) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Epoch < p.epochs.latest() {
		// Metadata older than this replica's log (a restart replaying a
		// snapshot): acting on it could truncate newer epochs away.
		return nil
	}
	p.roleMu.Lock()
	old := p.role
	if r.Epoch < old.Epoch || (r.Epoch == old.Epoch && r.PartitionEpoch < old.PartitionEpoch) {
		p.roleMu.Unlock()
		return nil // stale
	}
	newEpoch := old.Epoch != r.Epoch || old.LeaderID != r.LeaderID || p.followers == nil
	if r.Leader() && newEpoch {
		// Record the epoch before anyone can see the role: a batch
		// appended as leader always carries it.
		if err := p.epochs.assign(r.Epoch, p.log.LogEndOffset()); err != nil {
			p.roleMu.Unlock()
			return fmt.Errorf("partition %s-%d: record epoch %d: %w", p.cfg.Topic, p.cfg.Partition, r.Epoch, err)
		}
	}
	if newEpoch {
		p.leaderEpoch.Store(r.Epoch)
	}
	p.role = r
	p.role.Replicas, p.role.ISR = slices.Clone(r.Replicas), slices.Clone(r.ISR)
	p.pending = slices.DeleteFunc(p.pending, func(id int32) bool { return slices.Contains(r.ISR, id) })
	if newEpoch {
		p.pending = nil
	}
	if r.Leader() && newEpoch {
		p.followers = map[int32]*follower{}
	}
	if r.Leader() {
		// Followers start as caught up now: they get lag.max to fetch
		// before the leader drops them. Replicas a reassignment adds or
		// removes within an epoch come and go here too.
		now := time.Now()
		for _, id := range r.Replicas {
			if id != r.Self && p.followers[id] == nil {
				p.followers[id] = &follower{leo: -1, caughtUp: now}
			}
		}
		for id := range p.followers {
			if !slices.Contains(r.Replicas, id) {
				delete(p.followers, id)
			}
		}
	}
	p.roleMu.Unlock()
	p.hwChanged.Broadcast() // acks=all waiters re-check leadership and ISR
	p.updateHighWatermark()
	return nil
}

// Role returns the current role.
func (p *Partition) Role() Role {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	r := p.role
	r.Replicas, r.ISR = slices.Clone(r.Replicas), slices.Clone(r.ISR)
	return r
}

// CheckLeader fails unless this replica leads; with a request's current
// leader epoch (-1 for none) it also fences stale or early clients.
func (p *Partition) CheckLeader(currentEpoch int32) error {
	return p.check(currentEpoch, true)
}

// CheckReplica is CheckLeader for reads that any replica may serve
// (KIP-392 follower fetching): it fails only when this broker holds no
// current replica, or the request's epoch is fenced or unknown.
func (p *Partition) CheckReplica(currentEpoch int32) error {
	return p.check(currentEpoch, false)
}

func (p *Partition) check(currentEpoch int32, leader bool) error {
	p.roleMu.Lock()
	r := p.role
	p.roleMu.Unlock()
	switch {
	case currentEpoch >= 0 && currentEpoch < r.Epoch:
		return fmt.Errorf("%w: request epoch %d, current %d", ErrFencedEpoch, currentEpoch, r.Epoch)
	case currentEpoch > r.Epoch:
		return fmt.Errorf("%w: request epoch %d, known %d", ErrUnknownEpoch, currentEpoch, r.Epoch)
	case leader && !r.Leader():
		return fmt.Errorf("%w: %s-%d is led by broker %d", ErrNotLeader, p.cfg.Topic, p.cfg.Partition, r.LeaderID)
	case !leader && (r.Epoch <= 0 || !slices.Contains(r.Replicas, r.Self)):
		return fmt.Errorf("%w: %s-%d has no replica here", ErrNotLeader, p.cfg.Topic, p.cfg.Partition)
	}
	return nil
}

// CheckMinISR fails acks=all produces while the ISR is below
// min.insync.replicas.
func (p *Partition) CheckMinISR() error {
	now := time.Now()
	p.roleMu.Lock()
	n, min := 0, p.role.MinISR
	for _, id := range p.role.ISR {
		f := p.followers[id]
		if id == p.role.Self || p.role.LagMax <= 0 || (f != nil && now.Sub(f.caughtUp) <= p.role.LagMax) {
			n++
		}
	}
	p.roleMu.Unlock()
	if n < min {
		return fmt.Errorf("%w: %s-%d has %d in sync, min.insync.replicas is %d", ErrNotEnoughReplicas, p.cfg.Topic, p.cfg.Partition, n, min)
	}
	return nil
}

// ISRProposal is an ISR a leader wants, with the partition epoch it was
// computed under (the controller refuses it if the epoch moved on).
type ISRProposal struct {
	ISR            []int32
	PartitionEpoch int32
}

// ReplicaFetched records a follower's fetch at fetchOffset (its log end)
// and returns the ISR the leader should propose when the follower has
// caught up and is not in it yet (nil otherwise). An offset above the
// leader's end (a follower holding a tail the leader does not have) is not
// progress and is not recorded.
func (p *Partition) ReplicaFetched(replica int32, fetchOffset int64, now time.Time) *ISRProposal {
	leaderEnd := p.log.LogEndOffset()
	if fetchOffset > leaderEnd {
		return nil
	}
	epochStart := p.epochStart(p.leaderEpoch.Load()) // takes mu: before roleMu
	p.roleMu.Lock()
	f := p.followers[replica]
	if f == nil || !p.role.Leader() {
		p.roleMu.Unlock()
		return nil
	}
	f.leo = fetchOffset
	if !f.everFetched || fetchOffset >= f.leaderEndAt {
		if fetchOffset >= f.leaderEndAt {
			f.caughtUp = now
		}
		f.everFetched = true
	}
	f.leaderEndAt = leaderEnd
	var propose *ISRProposal
	// A follower joins the ISR once it has everything up to the high
	// watermark and is inside the current leader epoch.
	if !slices.Contains(p.role.ISR, replica) && fetchOffset >= p.hw.Load() && fetchOffset >= epochStart {
		if !slices.Contains(p.pending, replica) {
			p.pending = append(p.pending, replica)
		}
		propose = &ISRProposal{ISR: append(slices.Clone(p.role.ISR), p.pending...), PartitionEpoch: p.role.PartitionEpoch}
	}
	p.roleMu.Unlock()
	p.updateHighWatermark()
	return propose
}

// epochStart is where a leader epoch began. It takes mu, so callers must
// not hold roleMu (the lock order is mu, then roleMu).
func (p *Partition) epochStart(epoch int32) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.epochs.entries) - 1; i >= 0; i-- {
		if p.epochs.entries[i].epoch == epoch {
			return p.epochs.entries[i].start
		}
	}
	return 0
}

// LaggingISR returns the ISR without followers that have not caught up in
// lagMax (replica.lag.time.max.ms), or nil when none lag.
func (p *Partition) LaggingISR(now time.Time, lagMax time.Duration) *ISRProposal {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	if !p.role.Leader() {
		return nil
	}
	var keep []int32
	dropped := false
	for _, id := range p.role.ISR {
		f := p.followers[id]
		if id != p.role.Self && f != nil && now.Sub(f.caughtUp) > lagMax {
			dropped = true
			continue
		}
		keep = append(keep, id)
	}
	if !dropped {
		return nil
	}
	return &ISRProposal{ISR: keep, PartitionEpoch: p.role.PartitionEpoch}
}

// updateHighWatermark moves a leader's high watermark to the smallest log
// end among the ISR (its own counted as its durable offset when acks wait
// for fsync). It never moves back.
func (p *Partition) updateHighWatermark() {
	end := p.log.LogEndOffset()
	if p.cfg.SyncAcks {
		end = min(end, p.log.DurableOffset())
	}
	p.roleMu.Lock()
	if !p.role.Leader() {
		p.roleMu.Unlock()
		return
	}
	hw := end
	for _, id := range append(slices.Clone(p.role.ISR), p.pending...) {
		if id == p.role.Self {
			continue
		}
		f := p.followers[id]
		if f == nil || f.leo < 0 {
			hw = min(hw, p.hw.Load()) // not heard from yet: hold still
			continue
		}
		hw = min(hw, f.leo)
	}
	p.roleMu.Unlock()
	p.SetHighWatermark(hw)
}
