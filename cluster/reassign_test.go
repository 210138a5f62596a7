package cluster

import (
	"slices"
	"testing"
)

// fourBrokers registers brokers 1-4 and a topic "t" of one partition on
// replicas with the given ISR, led by the ISR's first.
func partitionOn(t *testing.T, replicas, isr []int32) *FSM {
	t.Helper()
	f := NewFSM()
	for id := int32(1); id <= 4; id++ {
		if _, err := apply(t, f, CmdRegisterBroker, RegisterBroker{ID: id, Name: "node-" + string(rune('0'+id)), KafkaAddr: "h:1", RaftAddr: "h:2"}); err != nil {
			t.Fatal(err)
		}
	}
	p := Partition{Replicas: replicas, Leader: isr[0], LeaderEpoch: 1, ISR: isr}
	if _, err := apply(t, f, CmdCreateTopic, CreateTopic{Topic: Topic{Name: "t", Partitions: []Partition{p}}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func part(f *FSM) Partition { return f.State().Topics["t"].Partitions[0] }

func reassignTo(t *testing.T, f *FSM, target []int32) {
	t.Helper()
	if _, err := apply(t, f, CmdReassign, Reassign{Changes: []ReassignChange{{Topic: "t", Target: target}}}); err != nil {
		t.Fatal(err)
	}
}

// A move finishes only once its adding replicas are in the ISR; the leader
// moves if it was removed; the removed replicas leave the ISR.
func TestReassignAddsThenRemoves(t *testing.T) {
	f := partitionOn(t, []int32{1, 2, 3}, []int32{1, 2, 3})
	reassignTo(t, f, []int32{4, 2, 3})
	p := part(f)
	if !slices.Equal(p.Replicas, []int32{4, 2, 3, 1}) || !slices.Equal(p.AddingReplicas, []int32{4}) || !slices.Equal(p.RemovingReplicas, []int32{1}) || p.Leader != 1 {
		t.Fatalf("in progress: %+v", p)
	}
	if p.readyToFinish() {
		t.Fatal("ready before the adding replica is in the ISR")
	}
	if _, err := apply(t, f, CmdAlterISR, AlterISR{Topic: "t", Leader: 1, LeaderEpoch: 1, PartitionEpoch: p.PartitionEpoch, ISR: []int32{1, 2, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	p = part(f)
	if _, err := apply(t, f, CmdFinishReassign, FinishReassign{Topic: "t", PartitionEpoch: p.PartitionEpoch}); err != nil {
		t.Fatal(err)
	}
	p = part(f)
	if !slices.Equal(p.Replicas, []int32{4, 2, 3}) || slices.Contains(p.ISR, 1) || p.Leader == 1 || !slices.Contains(p.ISR, p.Leader) || p.LeaderEpoch != 2 || p.Reassigning() {
		t.Fatalf("finished: %+v", p)
	}
}

// Removing the only in-sync replica waits until a target replica is back
// in the ISR; it never leaves the partition without an in-sync copy.
func TestReassignNeverDropsTheLastInSyncReplica(t *testing.T) {
	f := partitionOn(t, []int32{1, 2, 3}, []int32{1})
	reassignTo(t, f, []int32{2, 3})
	p := part(f)
	if p.Leader != 1 || !slices.Equal(p.ISR, []int32{1}) || !p.Reassigning() || p.readyToFinish() {
		t.Fatalf("removing the only in-sync replica at once: %+v", p)
	}
	if _, err := apply(t, f, CmdAlterISR, AlterISR{Topic: "t", Leader: 1, LeaderEpoch: 1, PartitionEpoch: p.PartitionEpoch, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if p = part(f); !p.readyToFinish() {
		t.Fatalf("not ready with 2 back in the ISR: %+v", p)
	}
}

// Cancelling is refused when no original replica is in sync (only adding
// ones are): going back would lose records.
func TestCancelNeedsAnOriginalInSync(t *testing.T) {
	f := partitionOn(t, []int32{1, 2}, []int32{1, 2})
	reassignTo(t, f, []int32{3, 4})
	p := part(f)
	// The originals drop out; an adding replica leads.
	if _, err := apply(t, f, CmdSetLeaders, SetLeaders{Changes: []LeaderChange{{Topic: "t", Leader: 3, LeaderEpoch: 2, ISR: []int32{3}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, f, CmdReassign, Reassign{Changes: []ReassignChange{{Topic: "t"}}}); err != nil {
		t.Fatal(err)
	}
	if p = part(f); !p.Reassigning() || p.Leader != 3 {
		t.Fatalf("a cancel that would lose records went through: %+v", p)
	}
	d := newDraft(f.State())
	if err := d.applyReassign(ReassignChange{Topic: "t"}); err == nil {
		t.Fatal("no error for the refused cancel")
	}
}

// A new target that drops the leader (an adding replica elected
// meanwhile) elects an in-sync replica of the new set; a leader change
// decided before a reassignment moved the replicas is not applied.
func TestReplacedTargetReelects(t *testing.T) {
	f := partitionOn(t, []int32{1, 2, 3}, []int32{1, 2, 3})
	reassignTo(t, f, []int32{4, 2, 3})
	p := part(f)
	if _, err := apply(t, f, CmdAlterISR, AlterISR{Topic: "t", Leader: 1, LeaderEpoch: 1, PartitionEpoch: p.PartitionEpoch, ISR: []int32{1, 2, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, f, CmdSetLeaders, SetLeaders{Changes: []LeaderChange{{Topic: "t", Leader: 4, LeaderEpoch: 2, ISR: []int32{2, 3, 4}}}}); err != nil {
		t.Fatal(err)
	}
	reassignTo(t, f, []int32{1, 2, 3})
	p = part(f)
	if p.Leader == 4 || !slices.Contains(p.Replicas, p.Leader) || !slices.Contains(p.ISR, p.Leader) || p.LeaderEpoch != 3 {
		t.Fatalf("leader after the replacing target: %+v", p)
	}
	stale := SetLeaders{Changes: []LeaderChange{{Topic: "t", Leader: 4, LeaderEpoch: 9, ISR: []int32{4}}}}
	if _, err := apply(t, f, CmdSetLeaders, stale); err != nil {
		t.Fatal(err)
	}
	if p = part(f); p.Leader == 4 {
		t.Fatalf("a leader outside the replicas was applied: %+v", p)
	}
}
