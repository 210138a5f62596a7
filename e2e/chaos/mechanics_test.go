//go:build linux

package chaos

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The network alone: every node reaches every other and the root
// namespace reaches every node; Close removes every name; a run whose
// owner died is cleaned by the next run and a live run is not.
func TestNetworkLifecycle(t *testing.T) {
	RequireNetns(t)
	live, err := NewNetwork(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })
	dead, err := NewNetwork(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dead.Close() })
	if live.HostIP == dead.HostIP {
		t.Fatalf("two live runs share the subnet of %s", live.HostIP)
	}
	ln := listenIn(t, live, 2, "tcp")
	if err := live.DialFrom(1, ln, time.Second); err != nil {
		t.Fatalf("node 1 cannot reach node 2: %v", err)
	}
	if c, err := net.DialTimeout("tcp", ln, time.Second); err != nil {
		t.Fatalf("the root namespace cannot reach node 2: %v", err)
	} else {
		c.Close()
	}
	// Another run's node is not on this run's bridge.
	if err := live.DialFrom(1, net.JoinHostPort(dead.IP(1), "9"), 500*time.Millisecond); err == nil {
		t.Fatal("a node reached another run's node")
	}

	// The "dead" run's owner goes away without cleaning up: its locks are
	// released, its namespaces and link stay.
	names := []string{dead.NS(1), dead.NS(2), dead.hub}
	link := dead.link
	for _, f := range dead.locks {
		f.Close()
	}
	dead.locks = nil
	CleanStale()
	for _, ns := range names {
		if nsExists(ns) {
			t.Errorf("stale namespace %s survived CleanStale", ns)
		}
	}
	if linkExists(link) {
		// The kernel removes the far end's peer asynchronously; CleanStale
		// deletes it itself, so it must be gone now.
		t.Errorf("stale link %s survived CleanStale", link)
	}
	if !nsExists(live.NS(1)) || !linkExists(live.link) {
		t.Fatal("CleanStale removed a live run's network")
	}

	ns, l := live.NS(1), live.link
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	if nsExists(ns) || linkExists(l) {
		t.Fatalf("Close left %s or %s", ns, l)
	}
	if ents, _ := os.ReadDir(netnsDir); ents != nil {
		for _, e := range ents {
			if strings.Contains(e.Name(), live.RunID) {
				t.Errorf("Close left namespace %s", e.Name())
			}
		}
	}
}

// The faults do what they say, observed from inside the namespaces: a
// partitioned node reaches no peer and no peer reaches it while the root
// namespace still reaches its Kafka port; one-way drops one direction
// only; Heal removes every rule; pause, kill and restart change the
// process as promised.
func TestFaultMechanics(t *testing.T) {
	c := Start(t, DefaultOptions(mlogBin(t)))
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	reach := func(from int, to *Node) error { return c.Net.DialFrom(from, to.RaftAddr(), time.Second) }
	mustReach := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	mustNot := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: connected, want the fault to block it", what)
		}
	}
	rootReach := func(n *Node) error {
		conn, err := net.DialTimeout("tcp", n.KafkaAddr(), time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	}
	mustReach("node 2 -> node 1 before faults", reach(2, n1))

	if err := c.PartitionNode(2); err != nil {
		t.Fatal(err)
	}
	mustNot("partitioned node 2 -> node 1 raft", reach(2, n1))
	mustNot("partitioned node 2 -> node 3 raft", reach(2, n3))
	mustNot("node 1 -> partitioned node 2 raft", reach(1, n2))
	mustReach("node 1 -> node 3 while node 2 is partitioned", reach(1, n3))
	mustReach("root -> partitioned node 2 kafka", rootReach(n2))
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}
	mustReach("node 2 -> node 1 after heal", reach(2, n1))
	mustReach("node 1 -> node 2 after heal", reach(1, n2))
	for i := 1; i <= 3; i++ {
		if rules := ruleLines(t, c, i); rules != "" {
			t.Fatalf("node %d has rules after Heal:\n%s", i, rules)
		}
	}

	// One way, seen with datagrams: node 3's reach node 1, node 1's do not
	// reach node 3.
	if err := c.OneWay(1, 3); err != nil {
		t.Fatal(err)
	}
	if !udpArrives(t, c.Net, 3, 1) {
		t.Fatal("one-way 1->3: a datagram from node 3 to node 1 was dropped")
	}
	if udpArrives(t, c.Net, 1, 3) {
		t.Fatal("one-way 1->3: a datagram from node 1 to node 3 arrived")
	}
	mustReach("node 2 -> node 3 during one-way 1->3", reach(2, n3))
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}
	if !udpArrives(t, c.Net, 1, 3) {
		t.Fatal("after heal a datagram from node 1 to node 3 was dropped")
	}

	if err := c.Pause(3); err != nil {
		t.Fatal(err)
	}
	if st := nodeState(c, 3); st != "T" {
		t.Fatalf("paused node 3 is in state %q, want T (stopped)", st)
	}
	if err := c.Resume(3); err != nil {
		t.Fatal(err)
	}
	if st := nodeState(c, 3); st == "T" {
		t.Fatal("resumed node 3 is still stopped")
	}

	if err := c.Kill(3); err != nil {
		t.Fatal(err)
	}
	if c.Running(3) {
		t.Fatal("killed node 3 is running")
	}
	mustNot("root -> killed node 3 kafka", rootReach(n3))
	if err := c.Restart(3); err != nil {
		t.Fatal(err)
	}
	mustReach("root -> restarted node 3 kafka", rootReach(n3))
	if err := c.WaitFormed(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Controller(); err != nil {
		t.Fatal(err)
	}
}

// ruleLines lists the -A rules in node i's namespace.
func ruleLines(t *testing.T, c *Cluster, i int) string {
	t.Helper()
	out, err := ipCmd("netns", "exec", c.Node(i).NS, "iptables", "-w", "-S")
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") {
			rules = append(rules, l)
		}
	}
	return strings.Join(rules, "\n")
}

// nodeState is the state letter of node i's process.
func nodeState(c *Cluster, i int) string {
	c.mu.Lock()
	pid := c.Node(i).cmd.Process.Pid
	c.mu.Unlock()
	return procState(pid)
}

// listenIn listens on node i's address, inside its namespace, accepting
// and closing connections until the test ends; it returns the address.
func listenIn(t *testing.T, nw *Network, i int, network string) string {
	t.Helper()
	var ln net.Listener
	err := inNS(nw.NS(i), func() error {
		var err error
		ln, err = net.Listen(network, net.JoinHostPort(nw.IP(i), "0"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// udpArrives sends datagrams from node `from` to a socket of node `to`
// and reports whether any arrives within a second.
func udpArrives(t *testing.T, nw *Network, from, to int) bool {
	t.Helper()
	var pc net.PacketConn
	err := inNS(nw.NS(to), func() error {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(nw.IP(to), "0"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dst := pc.LocalAddr().String()
	err = inNS(nw.NS(from), func() error {
		c, err := net.Dial("udp", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		// A DROP in OUTPUT fails the write with EPERM: that datagram is
		// simply not sent.
		for k := 0; k < 5; k++ {
			_, _ = c.Write([]byte("chaos"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 16)
	_, _, err = pc.ReadFrom(buf)
	return err == nil
}

// PowerLossAll on lossyfs mounts: every node is killed, its unsynced
// writes dropped, and started again; the cluster forms again from what
// was fsynced (Raft state and meta.properties included).
func TestPowerLossAllMechanics(t *testing.T) {
	opts := DefaultOptions(mlogBin(t))
	opts.Disk = LossyDisk
	c := Start(t, opts)
	pids := map[int]int{}
	for i := 1; i <= c.Size(); i++ {
		c.mu.Lock()
		pids[i] = c.Node(i).cmd.Process.Pid
		c.mu.Unlock()
	}
	if err := c.PowerLossAll(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= c.Size(); i++ {
		c.mu.Lock()
		pid := c.Node(i).cmd.Process.Pid
		c.mu.Unlock()
		if pid == pids[i] || !c.Running(i) {
			t.Fatalf("node %d was not restarted by PowerLossAll", i)
		}
		if _, err := os.Stat(filepath.Join(c.Node(i).DataDir, "meta.properties")); err != nil {
			t.Fatalf("node %d lost its fsynced meta.properties: %v", i, err)
		}
	}
	if err := c.WaitFormed(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}
