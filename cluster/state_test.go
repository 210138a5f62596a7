package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/mlog/mlog/acl"
)

func apply(t *testing.T, f *FSM, typ string, body any) (any, error) {
	t.Helper()
	data, err := NewCommand(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	res := f.Apply(&raft.Log{Index: 1, Data: data}).(applyResult)
	return res.value, res.err
}

func threeBrokers(t *testing.T, f *FSM) {
	for id := int32(1); id <= 3; id++ {
		if _, err := apply(t, f, CmdRegisterBroker, RegisterBroker{ID: id, Name: "node-" + string(rune('0'+id)), KafkaAddr: "h:1", RaftAddr: "h:2"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFSMCommands(t *testing.T) {
	f := NewFSM()
	threeBrokers(t, f)
	parts, err := assign(f.State(), 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, f, CmdCreateTopic, CreateTopic{Topic: Topic{Name: "orders", Partitions: parts}}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, f, CmdCreateTopic, CreateTopic{Topic: Topic{Name: "orders"}}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	p := f.State().Topics["orders"].Partitions[0]
	// An ISR change from the current leader and epochs is taken...
	isr := []int32{p.Leader}
	v, err := apply(t, f, CmdAlterISR, AlterISR{Topic: "orders", Partition: 0, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: isr})
	if err != nil || v.(int32) != p.PartitionEpoch+1 {
		t.Fatalf("alter isr: %v %v", v, err)
	}
	// ...a stale one, or one without the leader, is refused.
	if _, err := apply(t, f, CmdAlterISR, AlterISR{Topic: "orders", Partition: 0, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: p.Replicas}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale alter isr: %v", err)
	}
	cur := f.State().Topics["orders"].Partitions[0]
	if _, err := apply(t, f, CmdAlterISR, AlterISR{Topic: "orders", Partition: 0, Leader: cur.Leader, LeaderEpoch: cur.LeaderEpoch, PartitionEpoch: cur.PartitionEpoch, ISR: []int32{99}}); !errors.Is(err, ErrInvalidISR) {
		t.Fatalf("bad isr: %v", err)
	}
	first, _ := apply(t, f, CmdAllocProducerIDs, AllocProducerIDs{Count: 10})
	second, _ := apply(t, f, CmdAllocProducerIDs, AllocProducerIDs{Count: 10})
	if first.(int64) != 0 || second.(int64) != 10 {
		t.Fatalf("producer ids %v then %v", first, second)
	}
	if _, err := apply(t, f, "no_such_command", struct{}{}); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}
	data, _ := json.Marshal(Command{Type: CmdDeleteTopic, Version: 2, Data: []byte(`{}`)})
	if res := f.Apply(&raft.Log{Data: data}).(applyResult); !errors.Is(res.err, ErrUnknownCommand) {
		t.Fatalf("unknown version: %v", res.err)
	}
	if res := f.Apply(&raft.Log{Data: []byte("garbage")}).(applyResult); !errors.Is(res.err, ErrBadCommand) {
		t.Fatalf("garbage entry: %v", res.err)
	}

	// Snapshot and restore give the same state.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&memSink{Buffer: &buf}); err != nil {
		t.Fatal(err)
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(f.State())
	b, _ := json.Marshal(g.State())
	if !bytes.Equal(a, b) {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
	if _, err := apply(t, f, CmdDeleteTopic, DeleteTopic{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.State().Topics["orders"]; ok {
		t.Fatal("deleted topic still there")
	}
}

type memSink struct{ *bytes.Buffer }

func (memSink) ID() string    { return "mem" }
func (memSink) Cancel() error { return nil }
func (memSink) Close() error  { return nil }

func TestAssignSpreadsReplicasAndLeaders(t *testing.T) {
	f := NewFSM()
	threeBrokers(t, f)
	parts, err := assign(f.State(), 6, 2)
	if err != nil {
		t.Fatal(err)
	}
	replicas, leaders := map[int32]int{}, map[int32]int{}
	for _, p := range parts {
		if len(p.Replicas) != 2 || p.Replicas[0] == p.Replicas[1] || p.Leader != p.Replicas[0] {
			t.Fatalf("bad partition %+v", p)
		}
		for _, r := range p.Replicas {
			replicas[r]++
		}
		leaders[p.Leader]++
	}
	for id := int32(1); id <= 3; id++ {
		if replicas[id] != 4 || leaders[id] != 2 {
			t.Fatalf("broker %d: %d replicas, %d leaders; want 4 and 2", id, replicas[id], leaders[id])
		}
	}
	if _, err := assign(f.State(), 1, 4); !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("rf 4 on 3 brokers: %v", err)
	}
}

func TestElectFromLiveISROnly(t *testing.T) {
	st := newState()
	for id := int32(1); id <= 3; id++ {
		st.Brokers[id] = &Broker{ID: id, Alive: true}
	}
	st.Topics["t"] = &Topic{Name: "t", Partitions: []Partition{
		{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, ISR: []int32{1, 2, 3}},
		{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, ISR: []int32{1}}, // only the dead leader in sync
	}}
	st.Brokers[1].Alive = false
	ch := elect(st)
	if len(ch) != 2 {
		t.Fatalf("changes %+v", ch)
	}
	if ch[0].Leader != 2 || ch[0].LeaderEpoch != 5 || len(ch[0].ISR) != 2 {
		t.Fatalf("partition 0: %+v, want leader 2 epoch 5 isr [2 3]", ch[0])
	}
	if ch[1].Leader != NoLeader || ch[1].LeaderEpoch != 5 {
		t.Fatalf("partition 1 elected outside the ISR: %+v", ch[1])
	}
	// With unclean election allowed, a live out-of-sync replica leads.
	st.Topics["t"].Configs = map[string]string{"unclean.leader.election.enable": "true"}
	if ch := elect(st); ch[1].Leader != 2 || len(ch[1].ISR) != 1 {
		t.Fatalf("unclean election: %+v", ch[1])
	}
	// A leaderless partition gets its in-sync replica back when it returns.
	st.Topics["t"].Configs = nil
	st.Topics["t"].Partitions[1] = Partition{Replicas: []int32{1, 2, 3}, Leader: NoLeader, LeaderEpoch: 5, ISR: []int32{1}}
	st.Topics["t"].Partitions[0].Leader = 2
	st.Brokers[1].Alive = true
	if ch := elect(st); len(ch) != 1 || ch[0].Partition != 1 || ch[0].Leader != 1 || ch[0].LeaderEpoch != 6 {
		t.Fatalf("returning ISR member: %+v", ch)
	}
}

func TestMoveLeadersAway(t *testing.T) {
	st := newState()
	for id := int32(1); id <= 3; id++ {
		st.Brokers[id] = &Broker{ID: id, Alive: true}
	}
	st.Topics["t"] = &Topic{Name: "t", Partitions: []Partition{
		{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 2, 3}},
		{Replicas: []int32{2, 1, 3}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2, 1}},
		{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1}}, // no one else in sync: stays
	}}
	ch := moveLeadersAway(st, 1)
	if len(ch) != 2 {
		t.Fatalf("changes %+v", ch)
	}
	if ch[0].Leader != 2 || ch[0].LeaderEpoch != 2 {
		t.Fatalf("led partition: %+v", ch[0])
	}
	if ch[1].Leader != 2 || ch[1].LeaderEpoch != 1 || len(ch[1].ISR) != 1 {
		t.Fatalf("followed partition: %+v (leader epoch must not move)", ch[1])
	}
}

// Credential changes copy the users they touch: a published state keeps
// what it had; deleting a user's last credential removes the user.
func TestAlterScramCopiesOnWrite(t *testing.T) {
	cred := func(i int32) ScramCredential {
		return ScramCredential{Salt: []byte("s"), Iterations: i, StoredKey: []byte("k"), ServerKey: []byte("v")}
	}
	d := newDraft(&State{})
	d.applyAlterScram(AlterScram{Upserts: []ScramUpsert{{User: "alice", Mechanism: ScramSHA256, Credential: cred(4096)}}})
	first := d.State

	d = newDraft(first)
	d.applyAlterScram(AlterScram{Upserts: []ScramUpsert{{User: "alice", Mechanism: ScramSHA512, Credential: cred(8192)}}})
	second := d.State
	if len(first.Users["alice"].Scram) != 1 || len(second.Users["alice"].Scram) != 2 {
		t.Fatalf("first %v, second %v: the published state changed", first.Users["alice"], second.Users["alice"])
	}

	d = newDraft(second)
	d.applyAlterScram(AlterScram{Deletions: []ScramDeletion{{User: "alice", Mechanism: ScramSHA256}, {User: "alice", Mechanism: ScramSHA512}, {User: "nobody", Mechanism: ScramSHA256}}})
	if len(d.Users) != 0 || len(second.Users["alice"].Scram) != 2 {
		t.Fatalf("after deleting both: %v (published: %v)", d.Users, second.Users["alice"])
	}
}

// ACL commands replace the slice: a published state keeps its bindings; a
// binding is stored once however often it is created.
func TestACLsCopyOnWrite(t *testing.T) {
	b := func(name string) acl.Binding {
		return acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: name, PatternType: acl.PatternLiteral,
			Principal: "User:alice", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}
	}
	d := newDraft(&State{})
	d.applyCreateACLs(CreateACLs{Bindings: []acl.Binding{b("a"), b("b"), b("a")}})
	first := d.State
	d = newDraft(first)
	d.applyCreateACLs(CreateACLs{Bindings: []acl.Binding{b("c"), b("b")}})
	second := d.State
	if len(first.ACLs) != 2 || len(second.ACLs) != 3 {
		t.Fatalf("first %v, second %v", first.ACLs, second.ACLs)
	}
	d = newDraft(second)
	d.applyDeleteACLs(DeleteACLs{Bindings: []acl.Binding{b("a"), b("zzz")}})
	if len(d.ACLs) != 2 || d.ACLs[0] != b("b") || d.ACLs[1] != b("c") || len(second.ACLs) != 3 || second.ACLs[0] != b("a") {
		t.Fatalf("after delete: %v (published %v)", d.ACLs, second.ACLs)
	}
}
