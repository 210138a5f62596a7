//go:build linux

package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A rule is one iptables rule the harness added inside a node's namespace.
type rule struct {
	node int
	spec []string // chain and match, as after -A / -D
}

// Kill SIGKILLs node i and waits until it is gone.
func (c *Cluster) Kill(i int) error {
	c.logf("fault: kill node %d", i)
	return c.signal(i, syscall.SIGKILL)
}

// Stop asks node i to shut down cleanly (SIGTERM) and waits for it.
func (c *Cluster) Stop(i int) error {
	c.logf("fault: stop node %d (SIGTERM)", i)
	return c.signal(i, syscall.SIGTERM)
}

// Restart starts node i again with the same flags and data dir and waits
// until it listens. A node still running is killed first.
func (c *Cluster) Restart(i int) error {
	if c.Running(i) {
		if err := c.Kill(i); err != nil {
			return err
		}
	}
	c.logf("fault: restart node %d", i)
	n := c.Node(i)
	if err := c.start(n); err != nil {
		return err
	}
	return c.waitListening(n)
}

// Pause stops node i's process (SIGSTOP): it keeps its sockets, answers
// nothing and sends nothing, like a long GC pause or a frozen VM.
func (c *Cluster) Pause(i int) error {
	c.logf("fault: pause node %d", i)
	return c.signal(i, syscall.SIGSTOP)
}

// Resume continues a paused node (SIGCONT).
func (c *Cluster) Resume(i int) error {
	c.logf("fault: resume node %d", i)
	return c.signal(i, syscall.SIGCONT)
}

// WipeAndRestart kills node i, removes everything in its data dir (log,
// Raft state, meta.properties) and starts it again at once, as a replaced
// disk would. The dir itself stays: it may be a mount point.
func (c *Cluster) WipeAndRestart(i int) error {
	if err := c.Kill(i); err != nil {
		return err
	}
	c.logf("fault: wipe data dir of node %d", i)
	dir := c.Node(i).DataDir
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return c.Restart(i)
}

// TornTail kills node i, then in some of its partition dirs cuts the last
// 1-64 bytes off the newest .log segment and in some deletes the .index
// files, and restarts it: the torn write and lost index of a crash
// mid-append. rng decides which dirs and how many bytes.
func (c *Cluster) TornTail(i int, rng *rand.Rand) error {
	if err := c.Kill(i); err != nil {
		return err
	}
	dirs, err := partitionDirs(c.Node(i).DataDir)
	if err != nil {
		return err
	}
	torn := 0
	for k, d := range dirs {
		// At least one dir is torn: the last one if none was before it.
		if rng.IntN(2) == 0 && !(torn == 0 && k == len(dirs)-1) {
			continue
		}
		torn++
		if seg := newest(d, ".log"); seg != "" {
			st, err := os.Stat(seg)
			if err != nil {
				return err
			}
			cut := min(int64(1+rng.IntN(64)), st.Size())
			if err := os.Truncate(seg, st.Size()-cut); err != nil {
				return err
			}
			c.logf("fault: node %d: cut %d bytes off %s", i, cut, rel(c.Node(i).DataDir, seg))
		}
		if rng.IntN(2) == 0 {
			idx, _ := filepath.Glob(filepath.Join(d, "*.index"))
			for _, f := range idx {
				if err := os.Remove(f); err != nil {
					return err
				}
			}
			c.logf("fault: node %d: removed %d .index files of %s", i, len(idx), filepath.Base(d))
		}
	}
	return c.Restart(i)
}

// PartitionNode cuts node i off from every other node, both ways, while
// clients in the root namespace still reach it: DROP rules in node i's
// namespace for each peer's address.
func (c *Cluster) PartitionNode(i int) error {
	c.logf("fault: partition node %d from its peers", i)
	for _, j := range c.Members() {
		if j == i {
			continue
		}
		ip := c.Node(j).IP
		if err := c.addRule(i, "INPUT", "-s", ip, "-j", "DROP"); err != nil {
			return err
		}
		if err := c.addRule(i, "OUTPUT", "-d", ip, "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

// OneWay drops every packet node from sends to node to; to's packets to
// from still arrive (so TCP to and from both stall, while to's gossip is
// still heard).
func (c *Cluster) OneWay(from, to int) error {
	c.logf("fault: drop packets from node %d to node %d", from, to)
	return c.addRule(from, "OUTPUT", "-d", c.Node(to).IP, "-j", "DROP")
}

// CutKafka drops node from's packets to node to's Kafka port only: from
// can no longer fetch from to as a follower, while Raft, gossip and every
// client still get through.
func (c *Cluster) CutKafka(from, to int) error {
	c.logf("fault: drop packets from node %d to node %d's Kafka port", from, to)
	return c.addRule(from, "OUTPUT", "-d", c.Node(to).IP, "-p", "tcp", "--dport", strconv.Itoa(kafkaPort), "-j", "DROP")
}

// Flap partitions node i and heals it count times, each state held for
// half of period.
func (c *Cluster) Flap(i int, period time.Duration, count int) error {
	c.logf("fault: flap node %d every %v, %d times", i, period, count)
	for k := 0; k < count; k++ {
		if err := c.PartitionNode(i); err != nil {
			return err
		}
		time.Sleep(period / 2) // holding the fault
		if err := c.healNode(i); err != nil {
			return err
		}
		time.Sleep(period / 2)
	}
	return nil
}

// Heal removes every rule the harness added.
func (c *Cluster) Heal() error {
	c.mu.Lock()
	rules := c.rules
	c.rules = nil
	c.mu.Unlock()
	if len(rules) > 0 {
		c.logf("fault: heal (%d rules)", len(rules))
	}
	var errs []string
	for _, r := range rules {
		if err := c.iptables(r.node, "-D", r.spec...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("chaos: heal: %s", strings.Join(errs, "; "))
	}
	return nil
}

// healNode removes the rules inside node i's namespace.
func (c *Cluster) healNode(i int) error {
	c.mu.Lock()
	var mine, rest []rule
	for _, r := range c.rules {
		if r.node == i {
			mine = append(mine, r)
		} else {
			rest = append(rest, r)
		}
	}
	c.rules = rest
	c.mu.Unlock()
	for _, r := range mine {
		if err := c.iptables(r.node, "-D", r.spec...); err != nil {
			return err
		}
	}
	return nil
}

// RollingRestart stops each node cleanly in turn, starts it again and
// waits for topic's partitions to have full ISRs before the next one (up
// to settle each).
func (c *Cluster) RollingRestart(topic string, settle time.Duration) error {
	for _, i := range c.Members() {
		if err := c.Stop(i); err != nil {
			return err
		}
		if err := c.Restart(i); err != nil {
			return err
		}
		if err := c.WaitSettled(topic, settle); err != nil {
			return err
		}
	}
	return nil
}

// FullRestart SIGKILLs every node and starts them all again.
func (c *Cluster) FullRestart() error {
	for i := 1; i <= c.Size(); i++ {
		if c.Running(i) {
			if err := c.Kill(i); err != nil {
				return err
			}
		}
	}
	return c.RestartDown()
}

// RestartDown resumes paused nodes and starts every node that is down.
func (c *Cluster) RestartDown() error {
	for i := 1; i <= c.Size(); i++ {
		c.mu.Lock()
		n := c.nodes[i-1]
		paused, up, out := n.paused, n.running(), n.out
		c.mu.Unlock()
		switch {
		case out:
		case up && paused:
			if err := c.Resume(i); err != nil {
				return err
			}
		case !up:
			if err := c.Restart(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// Recover undoes every fault: heal the network, resume and restart nodes.
func (c *Cluster) Recover() error {
	if err := c.Heal(); err != nil {
		return err
	}
	return c.RestartDown()
}

func (c *Cluster) addRule(i int, spec ...string) error {
	if err := c.iptables(i, "-A", spec...); err != nil {
		return err
	}
	c.mu.Lock()
	c.rules = append(c.rules, rule{node: i, spec: slices.Clone(spec)})
	c.mu.Unlock()
	return nil
}

// iptables runs iptables inside node i's namespace; -w waits for the xtables
// lock rather than failing when another run holds it.
func (c *Cluster) iptables(i int, op string, spec ...string) error {
	args := append([]string{"netns", "exec", c.Node(i).NS, "iptables", "-w", op}, spec...)
	_, err := ipCmd(args...)
	return err
}

func (c *Cluster) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("%s "+format, append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
}

// partitionDirs are the dirs of dataDir holding .log segments (the
// partitions; Raft's dir holds none).
func partitionDirs(dataDir string) ([]string, error) {
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(dataDir, e.Name())
		if newest(d, ".log") != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// newest is the file of dir with suffix ext whose name sorts last (segment
// names are zero-padded base offsets).
func newest(dir, ext string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
	if len(m) == 0 {
		return ""
	}
	slices.Sort(m)
	return m[len(m)-1]
}

func rel(base, path string) string {
	if r, err := filepath.Rel(base, path); err == nil {
		return r
	}
	return path
}

// mountDisk puts node n's data dir on its own Disk, backed by a sibling
// directory.
func (c *Cluster) mountDisk(n *Node) error {
	backing := filepath.Join(c.dir, fmt.Sprintf("backing-%d", n.ID))
	for _, d := range []string{backing, n.DataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	d, err := c.opts.Disk(backing, n.DataDir)
	if err != nil {
		return fmt.Errorf("chaos: node %d: %w", n.ID, err)
	}
	c.disks = append(c.disks, d)
	return nil
}

// PowerLossAll is a power cut of every machine at once: every node is
// SIGKILLed and reaped, every Disk drops what was not fsynced, and every
// node starts again. It needs Options.Disk.
func (c *Cluster) PowerLossAll() error {
	if len(c.disks) == 0 {
		return errors.New("chaos: PowerLossAll needs Options.Disk")
	}
	c.logf("fault: power loss of every node")
	for i := 1; i <= c.Size(); i++ {
		if c.Running(i) {
			if err := c.signal(i, syscall.SIGKILL); err != nil {
				return err
			}
		}
	}
	for i, d := range c.disks {
		c.logf("fault: node %d loses %d unsynced bytes", i+1, d.Unsynced())
		if err := d.PowerLoss(); err != nil {
			return err
		}
	}
	return c.RestartDown()
}

// unmountDisks stops serving every Disk; the processes are dead.
func (c *Cluster) unmountDisks() error {
	var errs []error
	for _, d := range c.disks {
		errs = append(errs, d.Unmount())
	}
	c.disks = nil
	return errors.Join(errs...)
}
