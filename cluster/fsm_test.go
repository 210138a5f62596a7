package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// stateJSON is a deep copy of st to compare later: if it changes, someone
// wrote into a published state.
func stateJSON(t testing.TB, st *State) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cowFSM returns an FSM with brokers 1-3 (incarnation "a"), "orders" of
// three partitions on all of them, and "solo" whose only in-sync replica
// is broker 2.
func cowFSM(t *testing.T) *FSM {
	f := NewFSM()
	for id := int32(1); id <= 3; id++ {
		mustApply(t, f, CmdRegisterBroker, RegisterBroker{ID: id, Name: fmt.Sprintf("node-%d", id), KafkaAddr: "h:1", RaftAddr: "h:2", Incarnation: "a"})
	}
	parts, err := assign(f.State(), 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, CmdCreateTopic, CreateTopic{Topic: Topic{Name: "orders", ID: TopicID{1}, Partitions: parts,
		Configs: map[string]string{"min.insync.replicas": "2"}}})
	mustApply(t, f, CmdCreateTopic, CreateTopic{Topic: Topic{Name: "solo", ID: TopicID{2}, Partitions: []Partition{
		{Replicas: []int32{2, 3}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2}}}}})
	return f
}

// Every command builds a new state and leaves the one published before it
// exactly as it was, sharing no map or slice it wrote.
func TestApplyLeavesPublishedStatesAlone(t *testing.T) {
	f := cowFSM(t)
	steps := []struct {
		typ   string
		body  func(st *State) any
		check func(st *State) error
	}{
		{CmdRegisterBroker, func(*State) any { return RegisterBroker{ID: 4, Name: "node-4", KafkaAddr: "h:4", Incarnation: "a"} },
			func(st *State) error {
				if !st.Alive(4) {
					return errors.New("broker 4 not registered")
				}
				return nil
			}},
		// A restart (new incarnation) fences broker 3 out of every ISR.
		{CmdRegisterBroker, func(*State) any { return RegisterBroker{ID: 3, Name: "node-3", KafkaAddr: "h:3", Incarnation: "b"} },
			func(st *State) error {
				for i, p := range st.Topics["orders"].Partitions {
					if slices.Contains(p.ISR, 3) || p.Leader == 3 {
						return fmt.Errorf("orders-%d: broker 3 not fenced: %+v", i, p)
					}
				}
				return nil
			}},
		// A death fences broker 2, leaving "solo" leaderless.
		{CmdBrokerStatus, func(*State) any { return BrokerStatus{ID: 2, Alive: false} },
			func(st *State) error {
				if st.Alive(2) || st.Topics["solo"].Partitions[0].Leader != NoLeader {
					return fmt.Errorf("broker 2 not fenced: alive %v, solo %+v", st.Alive(2), st.Topics["solo"].Partitions[0])
				}
				return nil
			}},
		{CmdBrokerStatus, func(*State) any { return BrokerStatus{ID: 2, Alive: true} },
			func(st *State) error {
				if !st.Alive(2) {
					return errors.New("broker 2 not alive")
				}
				return nil
			}},
		{CmdCreateTopic, func(*State) any {
			return CreateTopic{Topic: Topic{Name: "new", Partitions: []Partition{{Replicas: []int32{1}, Leader: 1, ISR: []int32{1}}}}}
		},
			func(st *State) error {
				if st.Topics["new"] == nil {
					return errors.New("topic not created")
				}
				return nil
			}},
		{CmdCreatePartitions, func(*State) any {
			return CreatePartitions{Name: "orders", Partitions: []Partition{{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}}}
		},
			func(st *State) error {
				if n := len(st.Topics["orders"].Partitions); n != 4 {
					return fmt.Errorf("%d partitions, want 4", n)
				}
				return nil
			}},
		{CmdSetLeaders, func(st *State) any {
			p := st.Topics["orders"].Partitions
			return SetLeaders{Changes: []LeaderChange{
				{Topic: "orders", Partition: 0, Leader: 1, LeaderEpoch: p[0].LeaderEpoch + 1, ISR: []int32{1, 2}},
				{Topic: "orders", Partition: 1, Leader: 2, LeaderEpoch: p[1].LeaderEpoch + 1, ISR: []int32{2, 1}},
				{Topic: "gone", Partition: 0, Leader: 1}, // deleted meanwhile: skipped
			}}
		},
			func(st *State) error {
				if p := st.Topics["orders"].Partitions[1]; p.Leader != 2 || !slices.Equal(p.ISR, []int32{2, 1}) {
					return fmt.Errorf("orders-1 %+v", p)
				}
				return nil
			}},
		{CmdAlterISR, func(st *State) any {
			p := st.Topics["orders"].Partitions[0]
			return AlterISR{Topic: "orders", Partition: 0, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: []int32{p.Leader}}
		},
			func(st *State) error {
				if p := st.Topics["orders"].Partitions[0]; len(p.ISR) != 1 {
					return fmt.Errorf("orders-0 ISR %v", p.ISR)
				}
				return nil
			}},
		{CmdAllocProducerIDs, func(*State) any { return AllocProducerIDs{Count: 5} },
			func(st *State) error {
				if st.NextProducerID != 5 {
					return fmt.Errorf("next producer id %d", st.NextProducerID)
				}
				return nil
			}},
		{CmdDeleteTopic, func(*State) any { return DeleteTopic{Name: "new"} },
			func(st *State) error {
				if st.Topics["new"] != nil {
					return errors.New("topic not deleted")
				}
				return nil
			}},
	}
	seen := map[string]bool{}
	for _, s := range steps {
		before := f.State()
		want := stateJSON(t, before)
		mustApply(t, f, s.typ, s.body(before))
		after := f.State()
		if after == before {
			t.Fatalf("%s: published no new state", s.typ)
		}
		if got := stateJSON(t, before); got != want {
			t.Fatalf("%s changed the state published before it:\nbefore %s\nafter  %s", s.typ, want, got)
		}
		if err := s.check(after); err != nil {
			t.Fatalf("%s: %v", s.typ, err)
		}
		assertNothingShared(t, s.typ, before, after)
		seen[s.typ] = true
	}
	for _, typ := range []string{CmdRegisterBroker, CmdBrokerStatus, CmdCreateTopic, CmdDeleteTopic, CmdCreatePartitions, CmdSetLeaders, CmdAlterISR, CmdAllocProducerIDs} {
		if !seen[typ] {
			t.Errorf("command %s not exercised", typ)
		}
	}

	// A command that fails publishes nothing.
	before := f.State()
	want := stateJSON(t, before)
	p := before.Topics["orders"].Partitions[0]
	data, _ := NewCommand(CmdAlterISR, AlterISR{Topic: "orders", Partition: 0, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch - 1, ISR: p.Replicas})
	if _, err := applyData(f, data); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale alter isr: %v", err)
	}
	if f.State() != before || stateJSON(t, before) != want {
		t.Fatal("a failed command changed the state")
	}
}

// assertNothingShared checks that a topic a command copied shares no
// Partitions slice or Configs map with the state before it, and that the
// maps the command may write are its own.
func assertNothingShared(t *testing.T, cmd string, before, after *State) {
	t.Helper()
	same := func(a, b any) bool {
		va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
		return !va.IsNil() && va.Pointer() == vb.Pointer()
	}
	if same(after.Topics, before.Topics) || same(after.Brokers, before.Brokers) {
		t.Fatalf("%s: new state shares its Topics or Brokers map", cmd)
	}
	for name, ta := range after.Topics {
		tb := before.Topics[name]
		if tb == nil || tb == ta {
			continue
		}
		if same(ta.Partitions, tb.Partitions) || same(ta.Configs, tb.Configs) {
			t.Fatalf("%s: copy of topic %q shares Partitions or Configs with the state before", cmd, name)
		}
	}
}

func applyData(f *FSM, data []byte) (any, error) {
	res := f.Apply(&raft.Log{Index: 1, Data: data}).(applyResult)
	return res.value, res.err
}

// Readers walk whole states while commands apply; run under -race. Each
// reader must see every command whole: all of "t0"'s partitions move to a
// new leader epoch in one command, and epochs and producer ids only grow.
func TestStateConcurrentReaders(t *testing.T) {
	f := cowFSM(t)
	mustApply(t, f, CmdCreateTopic, CreateTopic{Topic: Topic{Name: "t0", Partitions: []Partition{
		{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}},
		{Replicas: []int32{2, 1}, Leader: 2, ISR: []int32{2, 1}},
		{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}},
	}}})
	done := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var lastEpoch int32
			var lastPID int64
			for {
				select {
				case <-done:
					return
				default:
				}
				st := f.State()
				parts := st.Topics["t0"].Partitions
				for _, p := range parts {
					if p.LeaderEpoch != parts[0].LeaderEpoch {
						errs <- fmt.Errorf("half-applied command: t0 epochs %+v", parts)
						return
					}
				}
				if parts[0].LeaderEpoch < lastEpoch || st.NextProducerID < lastPID {
					errs <- fmt.Errorf("went back: epoch %d after %d, producer id %d after %d", parts[0].LeaderEpoch, lastEpoch, st.NextProducerID, lastPID)
					return
				}
				lastEpoch, lastPID = parts[0].LeaderEpoch, st.NextProducerID
				for _, name := range st.TopicNames() {
					tp := st.Topics[name]
					_ = tp.Configs["min.insync.replicas"]
					for _, p := range tp.Partitions {
						_ = slices.Contains(p.ISR, p.Leader) && slices.Contains(p.Replicas, p.Leader)
					}
				}
				_, _ = f.Broker(2)
				if _, err := json.Marshal(st); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() { // snapshots read the published state with no lock
		for {
			select {
			case <-done:
				return
			default:
			}
			snap, err := f.Snapshot()
			if err != nil {
				errs <- err
				return
			}
			_ = snap.Persist(&memSink{Buffer: &bytes.Buffer{}})
		}
	})
	for i := range 300 {
		epoch := int32(i + 1)
		mustApply(t, f, CmdSetLeaders, SetLeaders{Changes: []LeaderChange{
			{Topic: "t0", Partition: 0, Leader: 1, LeaderEpoch: epoch, ISR: []int32{1, 2}},
			{Topic: "t0", Partition: 1, Leader: 2, LeaderEpoch: epoch, ISR: []int32{2, 1}},
			{Topic: "t0", Partition: 2, Leader: 1, LeaderEpoch: epoch, ISR: []int32{1, 2}},
		}})
		mustApply(t, f, CmdAllocProducerIDs, AllocProducerIDs{Count: 1})
		mustApply(t, f, CmdBrokerStatus, BrokerStatus{ID: 3, Alive: i%2 == 1})
		mustApply(t, f, CmdCreateTopic, CreateTopic{Topic: Topic{Name: "tmp", Partitions: []Partition{{Replicas: []int32{1}, Leader: 1, ISR: []int32{1}}}}})
		mustApply(t, f, CmdCreatePartitions, CreatePartitions{Name: "tmp", Partitions: []Partition{{Replicas: []int32{2}, Leader: 2, ISR: []int32{2}}}})
		mustApply(t, f, CmdDeleteTopic, DeleteTopic{Name: "tmp"})
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Restore publishes the snapshot's state as a new one, wakes waiters, and
// leaves the state readers held before it alone.
func TestRestorePublishesNewState(t *testing.T) {
	src := cowFSM(t)
	mustApply(t, src, CmdAllocProducerIDs, AllocProducerIDs{Count: 42})
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&memSink{Buffer: &buf}); err != nil {
		t.Fatal(err)
	}

	f := NewFSM()
	mustApply(t, f, CmdRegisterBroker, RegisterBroker{ID: 9, Name: "node-9", KafkaAddr: "h:9"})
	before := f.State()
	want := stateJSON(t, before)
	changed := f.Changed()
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not signal a change")
	}
	after := f.State()
	if after == before || stateJSON(t, before) != want {
		t.Fatal("Restore did not publish a new state, or changed the old one")
	}
	if stateJSON(t, after) != stateJSON(t, src.State()) {
		t.Fatalf("restored state differs:\n%s\n%s", stateJSON(t, after), stateJSON(t, src.State()))
	}
	if _, ok := f.Broker(9); ok {
		t.Fatal("Broker reads the state from before the restore")
	}
	if b, ok := f.Broker(2); !ok || b.Name != "node-2" {
		t.Fatalf("Broker(2) after restore: %+v %v", b, ok)
	}
	// Commands apply on top of the restored state.
	if v := mustApply(t, f, CmdAllocProducerIDs, AllocProducerIDs{Count: 1}); v.(int64) != 42 {
		t.Fatalf("producer id after restore %v, want 42", v)
	}
}
