//go:build linux

package chaos

// The cluster grows and shrinks under the workload, as operators do it:
// a fourth node joins in its own namespace, `mlog cluster rebalance
// --execute` spreads the replicas onto it (throttled, so the moves are
// still going when the controller is killed, and the next controller must
// finish them), and `mlog broker decommission` empties a node that leads
// a partition of the workload's topic (throttled, so its replacements
// catch up slowly and a move finished too early would lose records), which
// is then retired. verify then checks that no acknowledged record was lost.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// mlog runs an mlog admin command against the members (from the root
// namespace, as an operator's machine would).
func (c *Cluster) mlog(ctx context.Context, args ...string) (string, error) {
	args = append(args, "--addrs", strings.Join(c.Addrs(), ","))
	out, err := exec.CommandContext(ctx, c.opts.Bin, args...).CombinedOutput()
	c.logf("mlog %s:\n%s", strings.Join(args[:2], " "), strings.TrimSpace(string(out)))
	if err != nil {
		return string(out), fmt.Errorf("mlog %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// replicaLoads are the replicas each live broker holds over every topic,
// from an answer that lists brokers brokers (a node just restarted answers
// for itself alone until it has caught up).
func (c *Cluster) replicaLoads(ctx context.Context, brokers int) (map[int32]int, error) {
	var load map[int32]int
	err := waitUntil(60*time.Second, func() (bool, error) {
		var err error
		load, err = c.replicaLoadsOnce(ctx)
		return err == nil && len(load) == brokers, nil
	}, func() string { return fmt.Sprintf("metadata listing %d brokers (last: %v)", brokers, load) })
	return load, err
}

func (c *Cluster) replicaLoadsOnce(ctx context.Context) (map[int32]int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(ctx)
	if err != nil {
		return nil, err
	}
	load := map[int32]int{}
	for _, b := range md.Brokers {
		load[b.NodeID] = 0
	}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			for _, r := range p.Replicas {
				load[r]++
			}
		}
	}
	return load, nil
}

// growRebalanceDecommission: join the spare, rebalance onto it under a
// throttle with the controller killed mid-move, then decommission (also
// throttled) a node leading a partition of the topic, and retire it.
func growRebalanceDecommission(f *Faulter) error {
	c := f.C
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	spare := c.Size()
	if err := c.Join(spare); err != nil {
		return err
	}
	if err := c.WaitFormed(60 * time.Second); err != nil {
		return err
	}
	// 200 KB/s per broker: the moves take a while.
	if _, err := c.mlog(ctx, "cluster", "alter-config", "--set", "follower.replication.throttled.rate=200000"); err != nil {
		return err
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := c.mlog(ctx, "cluster", "rebalance", "--execute", "--timeout", "5m")
		done <- result{out, err}
	}()
	if err := waitUntil(60*time.Second, func() (bool, error) {
		out, err := c.mlog(ctx, "cluster", "describe")
		return err == nil && strings.Contains(out, "reassigning"), nil
	}, func() string { return "a reassignment in progress" }); err != nil {
		return err
	}
	ctrl, err := f.Controller()
	if err != nil {
		return err
	}
	if err := c.Kill(ctrl); err != nil {
		return err
	}
	f.Hold()
	if err := c.Restart(ctrl); err != nil {
		return err
	}
	if _, err := c.mlog(ctx, "cluster", "alter-config", "--delete", "follower.replication.throttled.rate"); err != nil {
		return err
	}
	res := <-done
	if res.err != nil {
		// The command's own requests may have met the dead controller;
		// the moves themselves go on. Planning again finds what is left.
		c.logf("grow: rebalance: %v; planning again", res.err)
		if _, err := c.mlog(ctx, "cluster", "rebalance", "--execute", "--timeout", "5m"); err != nil {
			return err
		}
	}
	load, err := c.replicaLoads(ctx, len(c.Members()))
	if err != nil {
		return err
	}
	lo, hi := 1<<30, -1
	for _, n := range load {
		lo, hi = min(lo, n), max(hi, n)
	}
	c.logf("grow: replicas per broker after the rebalance: %v", load)
	if hi-lo > 1 || load[int32(spare)] == 0 {
		return fmt.Errorf("grow: replicas per broker after the rebalance: %v", load)
	}
	if err := f.Settle(); err != nil {
		return err
	}

	// Shrink: a node leading a partition of the topic goes (its
	// leadership must move to an in-sync replica, never to the empty one
	// taking its place); not node 1, which bootstraps.
	gone := 0
	for p := range f.Partitions {
		if l, err := c.Leader(f.Topic, int32(p)); err == nil && l != 1 {
			gone = l
			break
		}
	}
	if gone == 0 {
		gone = f.Other(1)
	}
	c.logf("shrink: decommissioning node %d", gone)
	// Throttled again: the replicas taking its place catch up slowly, and
	// must be in sync before it goes.
	if _, err := c.mlog(ctx, "cluster", "alter-config", "--set", "follower.replication.throttled.rate=200000"); err != nil {
		return err
	}
	if _, err := c.mlog(ctx, "broker", "decommission", fmt.Sprint(gone), "--execute", "--timeout", "5m"); err != nil {
		return err
	}
	if _, err := c.mlog(ctx, "cluster", "alter-config", "--delete", "follower.replication.throttled.rate"); err != nil {
		return err
	}
	// The decommissioned broker is no longer listed.
	load, err = c.replicaLoads(ctx, len(c.Members())-1)
	if err != nil {
		return err
	}
	if n, listed := load[int32(gone)]; listed || n > 0 {
		return fmt.Errorf("shrink: broker %d still listed or holding replicas after its decommission: %v", gone, load)
	}
	if err := c.Retire(gone); err != nil {
		return err
	}
	return errors.Join(c.WaitFormed(60*time.Second), f.Settle())
}
