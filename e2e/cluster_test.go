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

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/internal/testutil"
)

var leaderRE = regexp.MustCompile(`topic=orders leader=node-(\d+) epoch=(\d+)`)

// Three real server processes with the seed's flags; an RF3 topic; acks=all
// records; SIGKILL the leader; produce again through the others; every
// acknowledged record is read back from another node.
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

	produce := func(skip int, vals []string) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(addrs(skip), ",")...), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.MetadataMinAge(200*time.Millisecond), kgo.RetryTimeout(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
	}
	before := []string{"hello world", "this is a test", "distributed log works!"}
	produce(-1, before)

	li := leader - 1
	if err := nodes[li].s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-nodes[li].s.done
	nodes[li].s.done <- nil
	after := []string{"after failover"}
	produce(li, after)

	// Read everything from a node that was never the leader's process.
	other := (li + 1) % 3
	got := run(t, "", kcatOrSkip(t), "-b", nodes[other].s.addr, "-C", "-t", "orders", "-o", "beginning", "-e", "-f", "%o\t%s\n")
	want := "0\thello world\n1\tthis is a test\n2\tdistributed log works!\n3\tafter failover\n"
	if got != want {
		t.Fatalf("consumed:\n%q\nwant:\n%q", got, want)
	}
	out, _ := runErr(topic, "list", "--addrs", addrs(li))
	if m := leaderRE.FindStringSubmatch(out); m == nil || m[1] == strconv.Itoa(leader) || m[2] == "1" {
		t.Fatalf("after the kill: %s", out)
	}

	// The killed node restarts on its data, catches up and rejoins the ISR.
	start(li)
	testutil.Eventually(t, "the restarted node back in sync", func() bool {
		out, _ := runErr(topic, "list", "--addrs", addrs(-1))
		return strings.Count(out, "isr=true") == 2 && strings.Count(out, "leo=4") == 2
	})
}

func kcatOrSkip(t *testing.T) string { return kcat(t) }
