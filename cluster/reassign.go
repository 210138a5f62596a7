package cluster

// Partition reassignment with Kafka's semantics (KIP-455). Asking for
// target replicas T of a partition whose replicas are R makes its replicas
// T followed by R−T, with T−R adding and R−T removing: the adding replicas
// open on their brokers, fetch from the leader, and join the ISR once
// caught up (the leader proposes it, as for any follower). When every
// adding replica is in the ISR the controller finishes the move: the
// replicas become T, the removing ones leave the ISR, and if the leader was
// one of them the first of T in the ISR leads in a new epoch. The state is
// in the metadata, so a new controller finishes what the old one started.
// A new target replaces one in progress (measured from the original
// replicas); no target cancels, going back to the original replicas.
//
// Preferred and unclean leader election (KIP-460) and the automatic
// preferred-leader balancing are here too.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Errors of reassignment and election, as Kafka's codes name them.
var (
	ErrInvalidReplicaAssignment   = errors.New("cluster: invalid replica assignment")
	ErrNoReassignmentInProgress   = errors.New("cluster: no reassignment in progress")
	ErrElectionNotNeeded          = errors.New("cluster: election not needed")
	ErrPreferredLeaderUnavailable = errors.New("cluster: preferred leader not available")
	ErrEligibleLeadersUnavailable = errors.New("cluster: no eligible leader available")
)

// Command types of reassignment.
const (
	CmdReassign       = "reassign"
	CmdFinishReassign = "finish_reassign"
)

// ReassignChange is one partition's requested replicas; nil Target
// cancels its reassignment.
type ReassignChange struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Target    []int32 `json:"target"`
}

// Reassign starts, replaces or cancels partitions' reassignments.
type Reassign struct {
	Changes []ReassignChange `json:"changes"`
}

// FinishReassign completes a partition's reassignment whose adding
// replicas have all joined the ISR, as of PartitionEpoch.
type FinishReassign struct {
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	PartitionEpoch int32  `json:"partition_epoch"`
}

// Reassigning reports whether the partition has a reassignment in
// progress.
func (p *Partition) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// TargetReplicas are the replicas the partition will have: its replicas
// without those a reassignment is removing.
func (p *Partition) TargetReplicas() []int32 { return minus(p.Replicas, p.RemovingReplicas) }

// readyToFinish reports whether the reassignment in progress may finish:
// every adding replica is in the ISR, and so is one of the target (the
// removing ones never take the last in-sync copy with them).
func (p *Partition) readyToFinish() bool {
	return p.Reassigning() && !slices.ContainsFunc(p.AddingReplicas, func(r int32) bool { return !slices.Contains(p.ISR, r) }) &&
		intersects(p.ISR, p.TargetReplicas())
}

// OriginalReplicas are the replicas before the reassignment in progress.
func (p *Partition) OriginalReplicas() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return slices.Contains(p.AddingReplicas, r) })
}

func minus(a, b []int32) []int32 {
	return slices.DeleteFunc(slices.Clone(a), func(r int32) bool { return slices.Contains(b, r) })
}

// checkTarget refuses a target Kafka refuses: empty, repeated or unknown
// brokers.
func (s *State) checkTarget(target []int32) error {
	if len(target) == 0 {
		return fmt.Errorf("%w: no replicas", ErrInvalidReplicaAssignment)
	}
	for i, r := range target {
		if slices.Contains(target[:i], r) {
			return fmt.Errorf("%w: broker %d twice", ErrInvalidReplicaAssignment, r)
		}
		if b := s.Brokers[r]; b == nil || b.Decommissioned {
			return fmt.Errorf("%w: no broker %d", ErrInvalidReplicaAssignment, r)
		}
	}
	return nil
}

// applyReassign changes one partition's replicas as c asks.
func (d *draft) applyReassign(c ReassignChange) error {
	p, err := d.partition(c.Topic, c.Partition)
	if err != nil {
		return err
	}
	orig := p.OriginalReplicas()
	if c.Target == nil {
		if !p.Reassigning() {
			return fmt.Errorf("%w: %s-%d", ErrNoReassignmentInProgress, c.Topic, c.Partition)
		}
		if !intersects(p.ISR, orig) {
			// Only replicas being added are in sync: going back would
			// leave no copy with every committed record.
			return fmt.Errorf("%w: %s-%d: no original replica is in sync, cancelling would lose records", ErrInvalidReplicaAssignment, c.Topic, c.Partition)
		}
		d.setReplicas(p, orig)
		return nil
	}
	if err := d.checkTarget(c.Target); err != nil {
		return err
	}
	adding, removing := minus(c.Target, orig), minus(orig, c.Target)
	if len(adding) == 0 && intersects(p.ISR, c.Target) {
		// Nothing to catch up: removals and reordering finish at once.
		d.setReplicas(p, slices.Clone(c.Target))
		return nil
	}
	// The adding replicas catch up first; with none, the target's
	// replicas must be back in the ISR before the others may go
	// (finishReassignments).
	p.Replicas = append(slices.Clone(c.Target), removing...)
	p.AddingReplicas, p.RemovingReplicas = adding, removing
	p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return !slices.Contains(p.Replicas, r) })
	if !slices.Contains(p.Replicas, p.Leader) {
		// A replaced reassignment dropped the leader (an adding replica
		// that had been elected): an in-sync replica leads instead.
		d.reelect(p)
	}
	p.PartitionEpoch++
	return nil
}

func intersects(a, b []int32) bool {
	return slices.ContainsFunc(a, func(r int32) bool { return slices.Contains(b, r) })
}

// reelect makes the first live in-sync replica lead in a new epoch (none:
// the partition waits leaderless until one returns).
func (d *draft) reelect(p *Partition) {
	p.Leader = NoLeader
	for _, r := range p.Replicas {
		if slices.Contains(p.ISR, r) && d.Alive(r) {
			p.Leader = r
			break
		}
	}
	p.LeaderEpoch++
}

// setReplicas ends any reassignment with replicas: the ISR keeps only
// them, and a leader not among them hands over to the first of them in
// the ISR in a new epoch (none: the partition waits leaderless, as after
// losing its ISR).
func (d *draft) setReplicas(p *Partition, replicas []int32) {
	p.Replicas, p.AddingReplicas, p.RemovingReplicas = replicas, nil, nil
	p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return !slices.Contains(replicas, r) })
	if !slices.Contains(replicas, p.Leader) {
		d.reelect(p)
	}
	p.PartitionEpoch++
}

func (d *draft) applyFinishReassign(f FinishReassign) error {
	p, err := d.partition(f.Topic, f.Partition)
	if err != nil {
		return err
	}
	if p.PartitionEpoch != f.PartitionEpoch || !p.Reassigning() {
		return nil // changed since: the controller looks again
	}
	if !p.readyToFinish() {
		return nil
	}
	d.setReplicas(p, minus(p.Replicas, p.RemovingReplicas))
	return nil
}

// Reassign starts, replaces or cancels reassignments, one error per
// change (nil: accepted). Controller only.
func (c *Controller) Reassign(ctx context.Context, changes []ReassignChange) ([]error, error) {
	st := c.node.FSM().State()
	errs := make([]error, len(changes))
	var ok []ReassignChange
	for i, ch := range changes {
		t := st.Topics[ch.Topic]
		switch {
		case t == nil:
			errs[i] = fmt.Errorf("%w: %q", ErrUnknownTopic, ch.Topic)
		case ch.Partition < 0 || int(ch.Partition) >= len(t.Partitions):
			errs[i] = fmt.Errorf("%w: %s-%d", ErrUnknownPartition, ch.Topic, ch.Partition)
		case ch.Target == nil && !t.Partitions[ch.Partition].Reassigning():
			errs[i] = fmt.Errorf("%w: %s-%d", ErrNoReassignmentInProgress, ch.Topic, ch.Partition)
		case ch.Target != nil:
			errs[i] = st.checkTarget(ch.Target)
		}
		if errs[i] == nil {
			ok = append(ok, ch)
		}
	}
	if len(ok) == 0 {
		return errs, nil
	}
	if _, err := c.node.Apply(ctx, CmdReassign, Reassign{Changes: ok}); err != nil {
		return nil, err
	}
	for _, ch := range ok {
		c.log.Info("partition reassignment", "topic", ch.Topic, "partition", ch.Partition, "target", ch.Target)
	}
	return errs, nil
}

// finishReassignments completes every reassignment whose adding replicas
// are all in the ISR.
func (c *Controller) finishReassignments(ctx context.Context) error {
	st := c.node.FSM().State()
	for _, name := range st.TopicNames() {
		for i, p := range st.Topics[name].Partitions {
			if !p.readyToFinish() {
				continue
			}
			f := FinishReassign{Topic: name, Partition: int32(i), PartitionEpoch: p.PartitionEpoch}
			if _, err := c.node.Apply(ctx, CmdFinishReassign, f); err != nil {
				return err
			}
			c.log.Info("partition reassignment finished", "topic", name, "partition", i, "replicas", p.TargetReplicas())
		}
	}
	return nil
}

// Election types of ElectLeaders (Kafka's).
const (
	ElectPreferred int8 = 0
	ElectUnclean   int8 = 1
)

// ElectionResult is one partition's outcome.
type ElectionResult struct {
	Topic     string
	Partition int32
	Err       error
}

// ElectLeaders elects leaders: preferred makes each partition's first
// replica lead when it is alive and in the ISR; unclean elects a leader
// for a partition that has none, from the ISR if it can and else from any
// live replica (which may lose acknowledged records). A nil set means
// every partition (preferred only: where the first replica does not
// lead). Controller only.
func (c *Controller) ElectLeaders(ctx context.Context, typ int8, parts map[string][]int32) ([]ElectionResult, error) {
	st := c.node.FSM().State()
	var out []ElectionResult
	var changes []LeaderChange
	all := parts == nil
	if all {
		parts = map[string][]int32{}
		for _, name := range st.TopicNames() {
			for i, p := range st.Topics[name].Partitions {
				if len(p.Replicas) > 0 && p.Leader != p.Replicas[0] {
					parts[name] = append(parts[name], int32(i))
				}
			}
		}
	}
	for _, name := range sortedKeys(parts) {
		for _, id := range parts[name] {
			res := ElectionResult{Topic: name, Partition: id}
			t := st.Topics[name]
			if t == nil || id < 0 || int(id) >= len(t.Partitions) {
				res.Err = fmt.Errorf("%w: %s-%d", ErrUnknownPartition, name, id)
				out = append(out, res)
				continue
			}
			ch, err := decideElection(st, name, id, t.Partitions[id], typ)
			if err == nil {
				changes = append(changes, ch)
			}
			if err != nil && !(all && errors.Is(err, ErrPreferredLeaderUnavailable)) {
				res.Err = err
			}
			out = append(out, res)
		}
	}
	if len(changes) > 0 {
		if _, err := c.node.Apply(ctx, CmdSetLeaders, SetLeaders{Changes: changes}); err != nil {
			return nil, err
		}
		for _, ch := range changes {
			c.log.Info("partition leader elected on request", "topic", ch.Topic, "partition", ch.Partition, "leader", ch.Leader, "epoch", ch.LeaderEpoch)
		}
	}
	return out, nil
}

func decideElection(st *State, topic string, id int32, p Partition, typ int8) (LeaderChange, error) {
	epoch := p.PartitionEpoch
	ch := LeaderChange{Topic: topic, Partition: id, LeaderEpoch: p.LeaderEpoch + 1, ISR: slices.Clone(p.ISR), IfPartitionEpoch: &epoch}
	switch typ {
	case ElectPreferred:
		pref := p.Replicas[0]
		switch {
		case p.Leader == pref:
			return ch, fmt.Errorf("%w: %s-%d is led by its preferred replica %d", ErrElectionNotNeeded, topic, id, pref)
		case !st.Alive(pref) || !slices.Contains(p.ISR, pref):
			return ch, fmt.Errorf("%w: %s-%d: broker %d is not alive and in the ISR", ErrPreferredLeaderUnavailable, topic, id, pref)
		}
		ch.Leader = pref
		return ch, nil
	case ElectUnclean:
		if p.Leader != NoLeader && st.Alive(p.Leader) {
			return ch, fmt.Errorf("%w: %s-%d is led by %d", ErrElectionNotNeeded, topic, id, p.Leader)
		}
		for _, r := range p.Replicas {
			if slices.Contains(p.ISR, r) && st.Alive(r) {
				ch.Leader = r
				return ch, nil
			}
		}
		for _, r := range p.Replicas {
			if st.Alive(r) {
				ch.Leader, ch.ISR = r, []int32{r}
				return ch, nil
			}
		}
		return ch, fmt.Errorf("%w: %s-%d has no live replica", ErrEligibleLeadersUnavailable, topic, id)
	}
	return ch, fmt.Errorf("%w: election type %d", ErrBadCommand, typ)
}

func sortedKeys(m map[string][]int32) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// leaderImbalanceRatio is Kafka's leader.imbalance.per.broker.percentage:
// a broker leading fewer than 90% of the partitions it is preferred for
// gets them back.
const leaderImbalanceRatio = 0.10

// rebalanceLeaders moves leadership back to preferred replicas where a
// broker's imbalance passes leaderImbalanceRatio (Kafka's
// auto.leader.rebalance.enable, on unless the dynamic broker config says
// false), at most every LeaderImbalanceInterval.
func (c *Controller) rebalanceLeaders(ctx context.Context) error {
	last, now := c.lastBalance.Load(), time.Now().UnixNano()
	if c.imbalanceInterval <= 0 || time.Duration(now-last) < c.imbalanceInterval || !c.lastBalance.CompareAndSwap(last, now) {
		return nil
	}
	st := c.node.FSM().State()
	if v, ok := st.BrokerConfigs[""]["auto.leader.rebalance.enable"]; ok {
		if on, _ := strconv.ParseBool(v); !on {
			return nil
		}
	}
	preferred := map[int32]int{}
	type tp struct {
		topic string
		id    int32
	}
	lost := map[int32][]tp{}
	for _, name := range st.TopicNames() {
		for i, p := range st.Topics[name].Partitions {
			if len(p.Replicas) == 0 || p.Reassigning() {
				continue
			}
			pref := p.Replicas[0]
			preferred[pref]++
			if p.Leader != pref {
				lost[pref] = append(lost[pref], tp{name, int32(i)})
			}
		}
	}
	parts := map[string][]int32{}
	for id, n := range preferred {
		if !st.Alive(id) || float64(len(lost[id]))/float64(n) <= leaderImbalanceRatio {
			continue
		}
		for _, p := range lost[id] {
			parts[p.topic] = append(parts[p.topic], p.id)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	res, err := c.ElectLeaders(ctx, ElectPreferred, parts)
	moved := 0
	for _, r := range res {
		if r.Err == nil {
			moved++
		}
	}
	c.log.Info("preferred leaders rebalanced", "partitions", moved)
	return err
}
