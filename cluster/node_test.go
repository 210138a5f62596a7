package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mlog/mlog/internal/testutil"
)

type testMembers struct {
	mu sync.Mutex
	m  map[string]Member
}

func (tm *testMembers) list() []Member {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	var out []Member
	for _, m := range tm.m {
		out = append(out, m)
	}
	return out
}

func (tm *testMembers) set(name string, alive bool) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	m := tm.m[name]
	m.Alive = alive
	tm.m[name] = m
}

type testNode struct {
	name string
	addr string
	dir  string
	node *Node
	ctrl *Controller
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startNode(t *testing.T, tn *testNode, bootstrap bool, members *testMembers) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	n, err := Open(Config{NodeName: tn.name, BindAddr: tn.addr, Dir: tn.dir, Bootstrap: bootstrap, Voters: DefaultVoters, ElectionTimeout: 300 * time.Millisecond, Logger: logger}, NewFSM())
	if err != nil {
		t.Fatal(err)
	}
	tn.node = n
	tn.ctrl = NewController(n, members.list, 3, logger)
	tn.ctrl.Start()
}

func (tn *testNode) stop() {
	if tn.node != nil {
		tn.ctrl.Stop()
		_ = tn.node.Shutdown()
		tn.node = nil
	}
}

func leaderOf(nodes []*testNode) *testNode {
	for _, n := range nodes {
		if n.node != nil && n.node.IsLeader() {
			return n
		}
	}
	return nil
}

// Three nodes: one bootstraps, the controller adds the others as voters
// and registers them; topics replicate to every FSM; killing the leader
// elects another controller that can create topics; a restarted node
// catches up from its own Raft data.
func TestRaftClusterControllerFailover(t *testing.T) {
	members := &testMembers{m: map[string]Member{}}
	nodes := startNodes(t, 3, members, func(i int) string { return "127.0.0.1:" + strconv.Itoa(9000+i) })
	defer stopNodes(nodes)
	testutil.Eventually(t, "three registered brokers and voters", func() bool {
		l := leaderOf(nodes)
		if l == nil {
			return false
		}
		servers, err := l.node.Servers()
		return err == nil && len(servers) == 3 && servers["node-3"] && len(l.node.FSM().State().Brokers) == 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := leaderOf(nodes)
	if _, err := l.ctrl.CreateTopic(ctx, "orders", TopicID{1}, 3, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, tn := range nodes {
		testutil.Eventually(t, tn.name+" to apply the topic", func() bool { return tn.node.FSM().State().Topics["orders"] != nil })
	}
	// Followers refuse to apply.
	for _, tn := range nodes {
		if tn != l {
			if _, err := tn.ctrl.CreateTopic(ctx, "x", TopicID{2}, 1, 1, nil, false); err == nil {
				t.Fatalf("%s applied a command without being leader", tn.name)
			}
		}
	}

	// Kill the controller: another takes over and elects new partition leaders.
	old := l
	old.stop()
	members.set(old.name, false)
	oldID, _ := strconv.Atoi(members.m[old.name].Tags[TagID])
	testutil.Eventually(t, "a new controller", func() bool { l = leaderOf(nodes); return l != nil && l != old })
	testutil.Eventually(t, "partitions led by live brokers", func() bool {
		st := l.node.FSM().State()
		for _, p := range st.Topics["orders"].Partitions {
			if p.Leader == int32(oldID) || p.Leader == NoLeader {
				return false
			}
		}
		return !st.Alive(int32(oldID))
	})
	if _, err := l.ctrl.CreateTopic(ctx, "after", TopicID{3}, 1, 2, nil, false); err != nil {
		t.Fatalf("create after failover: %v", err)
	}

	// The old controller restarts from its data and catches up.
	startNode(t, old, false, members)
	members.set(old.name, true)
	testutil.Eventually(t, "the restarted node to catch up", func() bool {
		st := old.node.FSM().State()
		return st.Topics["after"] != nil && st.Alive(int32(oldID))
	})
}

// The first three nodes become voters, later ones non-voters.
func TestFourthNodeJoinsAsNonVoter(t *testing.T) {
	members := &testMembers{m: map[string]Member{}}
	nodes := startNodes(t, 4, members, func(int) string { return "127.0.0.1:1" })
	defer stopNodes(nodes)
	testutil.Eventually(t, "four Raft servers", func() bool {
		l := leaderOf(nodes)
		if l == nil {
			return false
		}
		s, err := l.node.Servers()
		return err == nil && len(s) == 4
	})
	s, _ := leaderOf(nodes).node.Servers()
	voters := 0
	for _, v := range s {
		if v {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("%d voters among %v, want 3", voters, s)
	}
}

// startNodes registers n live members node-1..n (node i's Kafka address
// from kafka(i)) and starts their nodes, node-1 bootstrapping.
func startNodes(t *testing.T, n int, members *testMembers, kafka func(i int) string) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := 1; i <= n; i++ {
		tn := &testNode{name: fmt.Sprintf("node-%d", i), addr: freeAddr(t), dir: t.TempDir()}
		members.m[tn.name] = Member{Name: tn.name, Alive: true, Tags: map[string]string{TagID: strconv.Itoa(i), TagKafka: kafka(i), TagRaft: tn.addr}}
		nodes = append(nodes, tn)
	}
	for i, tn := range nodes {
		startNode(t, tn, i == 0, members)
	}
	return nodes
}

func stopNodes(nodes []*testNode) {
	for _, tn := range nodes {
		tn.stop()
	}
}

// A lone voter elects itself at once, bootstrapping or restarting, instead
// of waiting out a heartbeat timeout for a leader that cannot exist: with a
// one-minute timeout it leads within Eventually's 10 s, both times, and
// the timeout is the configured one afterwards.
func TestLoneVoterElectsAtOnce(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	open := func(bootstrap bool) *Node {
		t.Helper()
		n, err := Open(Config{NodeName: "solo", BindAddr: addr, Dir: dir, Bootstrap: bootstrap, Voters: DefaultVoters,
			ElectionTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler)}, NewFSM())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := open(true)
	testutil.Eventually(t, "the bootstrapped voter leading", n.IsLeader)
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	n = open(false)
	defer n.Shutdown()
	testutil.Eventually(t, "the restarted voter leading", n.IsLeader)
	if got := n.raft.ReloadableConfig().HeartbeatTimeout; got != time.Minute {
		t.Fatalf("heartbeat timeout %v after the election, want the configured 1m", got)
	}
}
