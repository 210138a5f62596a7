package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/internal/testutil"
)

var leaderRE = regexp.MustCompile(`topic=orders leader=node-(\d+) epoch=(\d+)`)

// The tutorial's walkthrough with real processes: three servers with the
// documented flags, an RF3 topic, `producer connect --acks 2` fed on stdin,
// `consumer connect --id --from-beginning` on a follower, SIGKILL of the
// leader while both run, and a consumer restarted on a third node that
// resumes after its last commit. Every acknowledged record is read back
// with kcat, and the killed node catches up when restarted.
func TestThreeProcessClusterLeaderKill(t *testing.T) {
	type node struct {
		serf, raft, kafka int
		s                 *server
		dir               string
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = &node{serf: freePort(t), raft: freePort(t), dir: t.TempDir()}
	}
	start := func(i int) {
		n := nodes[i]
		args := []string{"--node-id", fmt.Sprintf("node-%d", i+1), "--bind-addr", fmt.Sprintf("127.0.0.1:%d", n.serf),
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", n.raft), "--data-dir", n.dir}
		if i == 0 {
			args = append(args, "--bootstrap", "true")
		}
		for j, o := range nodes {
			if j != i {
				args = append(args, "--peer", fmt.Sprintf("node-%d=127.0.0.1:%d", j+1, o.serf))
			}
		}
		if n.kafka != 0 {
			args = append(args, "--rpc-port", strconv.Itoa(n.kafka))
		}
		n.s = startServer(t, nil, args...)
		n.kafka, _ = strconv.Atoi(n.s.addr[strings.LastIndex(n.s.addr, ":")+1:])
	}
	for i := range nodes {
		start(i)
	}
	addrs := func(skip int) string {
		var a []string
		for i, n := range nodes {
			if i != skip {
				a = append(a, n.s.addr)
			}
		}
		return strings.Join(a, ",")
	}
	topic := bin(t, "topic")
	testutil.Eventually(t, "the topic to be created on a formed cluster", func() bool {
		out, err := runErr(topic, "create", "--addrs", addrs(-1), "--topic", "orders", "--replicas", "3", "--timeout", "5s")
		return err == nil && strings.Contains(out, "replicas=3")
	})
	var leader int
	testutil.Eventually(t, "three replicas in sync", func() bool {
		out, _ := runErr(topic, "list", "--addrs", addrs(-1))
		m := leaderRE.FindStringSubmatch(out)
		if m == nil || strings.Count(out, "isr=true") != 2 {
			return false
		}
		leader, _ = strconv.Atoi(m[1])
		return true
	})

	// mlog's producer, acks=2, kept running across the failover: it is
	// given every node so that it can reach the survivors.
	prod := startProc(t, "producer", "connect", "--addrs", addrs(-1), "--topic", "orders", "--acks", "2")
	prod.waitFor(t, `connected to topic "orders" leader at `)
	for i, v := range []string{"hello world", "this is a test", "distributed log works!"} {
		fmt.Fprintln(prod.stdin, v)
		prod.waitFor(t, fmt.Sprintf("offset=%d\n", i))
	}

	// mlog's consumer on a node that is not the leader: from the
	// beginning, committing under --id my-consumer, kept running across the
	// failover.
	li := leader - 1
	other, third := (li+1)%3, (li+2)%3
	cons := startProc(t, "consumer", "connect", "--addrs", nodes[other].s.addr, "--topic", "orders", "--id", "my-consumer", "--from-beginning")
	cons.waitFor(t, "Starting from beginning (offset 0)\n0\thello world\n1\tthis is a test\n2\tdistributed log works!\n")
	waitCommitted(t, nodes[other].s.addr, "my-consumer", 3)

	if err := nodes[li].s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-nodes[li].s.done
	nodes[li].s.done <- nil
	fmt.Fprintln(prod.stdin, "after failover")
	prod.waitFor(t, "offset=3\n")
	prod.waitFor(t, "reconnected to topic leader at ") // the leader changed under it
	cons.waitFor(t, "2\tdistributed log works!\n3\tafter failover\n")
	waitCommitted(t, nodes[other].s.addr, "my-consumer", 4)
	_ = cons.cmd.Process.Kill()

	// One more record; the consumer, started again on another node without
	// --from-beginning, resumes after its last commit and reads only it.
	fmt.Fprintln(prod.stdin, "while you were away")
	prod.waitFor(t, "offset=4\n")
	prod.stdin.Close()
	if err := <-prod.done; err != nil {
		t.Fatalf("producer exited with %v on end of input", err)
	}
	prod.done <- nil
	cons = startProc(t, "consumer", "connect", "--addrs", nodes[third].s.addr, "--topic", "orders", "--id", "my-consumer")
	cons.waitFor(t, "Resuming from offset 4 (last committed)\n4\twhile you were away\n")
	waitCommitted(t, nodes[third].s.addr, "my-consumer", 5)
	if strings.Contains(cons.output(), "after failover") {
		t.Fatalf("resumed consumer re-read committed records:\n%s", cons.output())
	}

	// The offsets topic exists now, listed only when asked for.
	out, _ := runErr(topic, "list", "--addrs", nodes[third].s.addr)
	if strings.Contains(out, "__consumer_offsets") {
		t.Fatalf("topic list shows the internal topic:\n%s", out)
	}
	if out, _ := runErr(topic, "list", "--addrs", nodes[third].s.addr, "--internal"); !strings.Contains(out, "topic=__consumer_offsets partition=15 ") {
		t.Fatalf("topic list --internal:\n%s", out)
	}

	// kcat reads the same log from a surviving node.
	got := run(t, "", kcatOrSkip(t), "-b", nodes[third].s.addr, "-C", "-t", "orders", "-o", "beginning", "-e", "-f", "%o\t%s\n")
	want := "0\thello world\n1\tthis is a test\n2\tdistributed log works!\n3\tafter failover\n4\twhile you were away\n"
	if got != want {
		t.Fatalf("consumed:\n%q\nwant:\n%q", got, want)
	}
	out, _ = runErr(topic, "list", "--addrs", addrs(li))
	if m := leaderRE.FindStringSubmatch(out); m == nil || m[1] == strconv.Itoa(leader) || m[2] == "1" {
		t.Fatalf("after the kill: %s", out)
	}

	// The killed node restarts on its data, catches up and rejoins the ISR.
	start(li)
	testutil.Eventually(t, "the restarted node back in sync", func() bool {
		out, _ := runErr(topic, "list", "--addrs", addrs(-1))
		return strings.Count(out, "isr=true") == 2 && strings.Count(out, "leo=5") == 2
	})
}

func kcatOrSkip(t *testing.T) string { return kcat(t) }

// waitCommitted waits until group's committed offset for orders[0] is want.
func waitCommitted(t *testing.T, addr, group string, want int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		offs, err := adm.FetchOffsets(ctx, group)
		cancel()
		if err == nil {
			if o, ok := offs.Lookup("orders", 0); ok && o.Err == nil && o.At == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offset of %s never reached %d (last: %v %v)", group, want, offs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
