package cluster

import (
	"errors"
	"fmt"
	"slices"
)

// ErrNotEnoughBrokers means fewer live brokers than the replication factor.
var ErrNotEnoughBrokers = errors.New("cluster: not enough live brokers")

// assign places n new partitions of rf replicas on the live brokers: each
// replica goes to the broker holding the fewest replicas so far, and each
// partition's leader (its first replica) to the chosen broker leading the
// fewest, so load and leadership both spread.
func assign(st *State, n, rf int) ([]Partition, error) {
	var live []int32
	for _, id := range st.BrokerIDs() {
		if b := st.Brokers[id]; b.Alive && !b.Decommissioned {
			live = append(live, id)
		}
	}
	if rf < 1 || rf > len(live) {
		return nil, fmt.Errorf("%w: replication factor %d, %d live brokers", ErrNotEnoughBrokers, rf, len(live))
	}
	replicas, leaders := map[int32]int{}, map[int32]int{}
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			for _, r := range p.Replicas {
				replicas[r]++
			}
			leaders[p.Leader]++
		}
	}
	out := make([]Partition, 0, n)
	for range n {
		cand := slices.Clone(live)
		slices.SortStableFunc(cand, func(a, b int32) int {
			if replicas[a] != replicas[b] {
				return replicas[a] - replicas[b]
			}
			return leaders[a] - leaders[b]
		})
		chosen := cand[:rf]
		lead := slices.MinFunc(chosen, func(a, b int32) int {
			if leaders[a] != leaders[b] {
				return leaders[a] - leaders[b]
			}
			return int(a - b)
		})
		reps := []int32{lead}
		for _, r := range chosen {
			if r != lead {
				reps = append(reps, r)
			}
		}
		for _, r := range reps {
			replicas[r]++
		}
		leaders[lead]++
		// Epochs start at 1, as `mlog topic list` shows them.
		out = append(out, Partition{Replicas: reps, Leader: lead, LeaderEpoch: 1, ISR: slices.Clone(reps)})
	}
	return out, nil
}

// elect decides new leaders for partitions whose leader is not alive: the
// first live in-sync replica, in assignment order, with the epoch moved on
// and dead brokers dropped from the ISR. With no live in-sync replica the
// partition goes leaderless (and keeps its ISR, so that one of them leads
// when it returns) unless its topic allows unclean election.
func elect(st *State) []LeaderChange {
	var out []LeaderChange
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		unclean := t.Configs["unclean.leader.election.enable"] == "true"
		for i, p := range t.Partitions {
			if p.Leader != NoLeader && st.Alive(p.Leader) {
				continue
			}
			ch := LeaderChange{Topic: name, Partition: int32(i), Leader: NoLeader, LeaderEpoch: p.LeaderEpoch + 1, ISR: slices.Clone(p.ISR)}
			var liveISR []int32
			for _, r := range p.Replicas {
				if slices.Contains(p.ISR, r) && st.Alive(r) {
					liveISR = append(liveISR, r)
				}
			}
			switch {
			case len(liveISR) > 0:
				ch.Leader, ch.ISR = liveISR[0], liveISR
			case unclean:
				for _, r := range p.Replicas {
					if st.Alive(r) {
						ch.Leader, ch.ISR = r, []int32{r}
						break
					}
				}
			}
			if ch.Leader == NoLeader && p.Leader == NoLeader {
				continue // still nobody to elect
			}
			out = append(out, ch)
		}
	}
	return out
}

// moveLeadersAway decides leaders for every partition led by broker id,
// which is shutting down: the next live in-sync replica, and id leaves the
// ISRs. Partitions with no other in-sync replica keep their leader (Kafka's
// controlled shutdown does the same: better a short outage than a loss).
func moveLeadersAway(st *State, id int32) []LeaderChange {
	var out []LeaderChange
	for _, name := range st.TopicNames() {
		for i, p := range st.Topics[name].Partitions {
			if !slices.Contains(p.ISR, id) {
				continue
			}
			isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
			if len(isr) == 0 {
				continue
			}
			leader := p.Leader
			if leader == id {
				leader = NoLeader
				for _, r := range p.Replicas {
					if slices.Contains(isr, r) && st.Alive(r) {
						leader = r
						break
					}
				}
				if leader == NoLeader {
					continue
				}
			}
			epoch := p.LeaderEpoch
			if leader != p.Leader {
				epoch++ // a new leader: fence the old one
			}
			out = append(out, LeaderChange{Topic: name, Partition: int32(i), Leader: leader, LeaderEpoch: epoch, ISR: isr})
		}
	}
	return out
}
