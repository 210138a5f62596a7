package cluster

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// benchFSM returns an FSM holding three brokers and topics topics of three
// partitions, each replicated on all three.
func benchFSM(b *testing.B, topics int) *FSM {
	b.Helper()
	f := NewFSM()
	for id := int32(1); id <= 3; id++ {
		mustApply(b, f, CmdRegisterBroker, RegisterBroker{ID: id, Name: fmt.Sprintf("node-%d", id), KafkaAddr: "h:1", RaftAddr: "h:2"})
	}
	for i := range topics {
		parts := make([]Partition, 3)
		for p := range parts {
			parts[p] = Partition{Replicas: []int32{1, 2, 3}, Leader: int32(p%3 + 1), LeaderEpoch: 1, ISR: []int32{1, 2, 3}}
		}
		mustApply(b, f, CmdCreateTopic, CreateTopic{Topic: Topic{Name: fmt.Sprintf("topic-%04d", i), Partitions: parts,
			Configs: map[string]string{"retention.ms": "3600000"}}})
	}
	return f
}

func mustApply(tb testing.TB, f *FSM, typ string, body any) any {
	tb.Helper()
	data, err := NewCommand(typ, body)
	if err != nil {
		tb.Fatal(err)
	}
	res := f.Apply(&raft.Log{Index: 1, Data: data}).(applyResult)
	if res.err != nil {
		tb.Fatalf("%s: %v", typ, res.err)
	}
	return res.value
}

// State is what every Metadata, consumer-group and forwarded request
// reads: its cost must not grow with the number of topics.
func BenchmarkFSMState(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("topics=%d", n), func(b *testing.B) {
			f := benchFSM(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if f.State().Topics["topic-0000"] == nil {
					b.Fatal("topic missing")
				}
			}
		})
	}
}

// Apply of a leadership change to one partition: the common metadata
// write (elections, ISR changes).
func BenchmarkFSMApply(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("topics=%d", n), func(b *testing.B) {
			f := benchFSM(b, n)
			data, err := NewCommand(CmdSetLeaders, SetLeaders{Changes: []LeaderChange{
				{Topic: "topic-0000", Partition: 0, Leader: 2, LeaderEpoch: 2, ISR: []int32{2, 3}}}})
			if err != nil {
				b.Fatal(err)
			}
			l := &raft.Log{Index: 1, Data: data}
			b.ReportAllocs()
			for b.Loop() {
				if res := f.Apply(l).(applyResult); res.err != nil {
					b.Fatal(res.err)
				}
			}
		})
	}
}
