//go:build linux

package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Schedule is one named kind of fault run under the workload.
type Schedule struct {
	Name string
	// Acks is the producers' acks: "all" (the default) or "1".
	Acks string
	// Strict schedules must end with zero violations: acks=all faults the
	// design promises to survive. Others only report what they find.
	Strict bool
	// Budget bounds the fault phase; the workload runs for warm-up +
	// Budget + a tail, so it is still producing when the faults end.
	Budget time.Duration
	// MinISR is the topic's min.insync.replicas (2 when zero).
	MinISR int
	// TopicConfigs, when set, are given to the topic, which the harness
	// then creates itself before verify reuses it.
	TopicConfigs map[string]string
	// Transactional runs verify's transactional workload
	// (--transactional): committed transactions must be whole, aborted
	// ones invisible to read_committed readers.
	Transactional bool
	// Disk, when set, puts every data dir on its own Disk (power-loss).
	Disk func(backing, mountpoint string) (Disk, error)
	// Spare nodes start outside the cluster for the faults to Join.
	Spare int
	// Faults injects the faults and undoes those it can; whatever it
	// leaves (rules, nodes down or paused) is undone after it returns.
	Faults func(f *Faulter) error
}

// Faulter is what a schedule's faults work with: the cluster, the run's
// seeded random source, and the workload's topic.
type Faulter struct {
	C          *Cluster
	Rng        *rand.Rand
	Topic      string
	Partitions int
	// HoldMin and HoldJitter: a fault is held HoldMin plus up to
	// HoldJitter, longer than every timeout that notices it (replica lag
	// max 10 s, Serf failure detection a few seconds).
	HoldMin, HoldJitter time.Duration
}

// Hold holds the current fault for a seeded duration. Sleeping here is the
// fault itself, not synchronisation.
func (f *Faulter) Hold() {
	d := f.holdDuration()
	f.C.logf("fault: holding %v", d.Round(time.Millisecond))
	time.Sleep(d)
}

func (f *Faulter) holdDuration() time.Duration {
	d := f.HoldMin
	if f.HoldJitter > 0 {
		d += time.Duration(f.Rng.Int64N(int64(f.HoldJitter)))
	}
	return d
}

// A Target is the node a fault hits and, when the fault must move
// something off it (a partition's leadership, the controller), how to
// tell that it has.
type Target struct {
	Node  int
	What  string      // what must move, for the error
	Moved func() bool // nil: nothing to check
}

// HoldOn holds a fault on t for a seeded duration. When t has a check it
// must pass within 30 s, while the fault holds (DESIGN.md promise 4: a new
// leader from the ISR within seconds); the error says what did not move.
func (f *Faulter) HoldOn(t Target) error {
	d, start := f.holdDuration(), time.Now()
	f.C.logf("fault: holding %v", d.Round(time.Millisecond))
	var err error
	if t.Moved != nil {
		err = waitUntil(30*time.Second, func() (bool, error) { return t.Moved(), nil },
			func() string { return t.What })
		if err == nil {
			f.C.logf("fault: %s: done after %v", t.What, time.Since(start).Round(time.Millisecond))
		}
	}
	if rest := d - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	return err
}

// LeaderTarget is the leader of a seeded partition, which must hand the
// partition to another replica.
func (f *Faulter) LeaderTarget() (Target, error) {
	p, l, err := f.PartitionLeader()
	return Target{Node: l, What: fmt.Sprintf("leadership of partition %d to move off node %d", p, l), Moved: func() bool {
		n, err := f.C.Leader(f.Topic, p)
		return err == nil && n != l
	}}, err
}

// ControllerTarget is the controller, which another node must replace.
func (f *Faulter) ControllerTarget() (Target, error) {
	c, err := f.Controller()
	return Target{Node: c, What: fmt.Sprintf("the controller to move off node %d", c), Moved: func() bool {
		n, err := f.C.Controller()
		return err == nil && n != c
	}}, err
}

// RandomTarget is a seeded node, with nothing to check.
func (f *Faulter) RandomTarget() (Target, error) { return Target{Node: f.Node()}, nil }

// Node is a seeded member of the cluster.
func (f *Faulter) Node() int {
	m := f.C.Members()
	return m[f.Rng.IntN(len(m))]
}

// Other is a seeded member that is not n.
func (f *Faulter) Other(n int) int {
	m := slices.DeleteFunc(f.C.Members(), func(i int) bool { return i == n })
	return m[f.Rng.IntN(len(m))]
}

// Leader is the leader of a seeded partition of the topic.
func (f *Faulter) Leader() (int, error) {
	_, l, err := f.PartitionLeader()
	return l, err
}

// PartitionLeader picks a seeded partition and returns it with its leader.
func (f *Faulter) PartitionLeader() (int32, int, error) {
	p := int32(f.Rng.IntN(f.Partitions))
	l, err := f.C.Leader(f.Topic, p)
	if err == nil {
		f.C.logf("fault: partition %d is led by node %d", p, l)
	}
	return p, l, err
}

// Controller is the current controller.
func (f *Faulter) Controller() (int, error) {
	n, err := f.C.Controller()
	if err == nil {
		f.C.logf("fault: the controller is node %d", n)
	}
	return n, err
}

// Settle waits for full ISRs between two faults of one schedule, so that
// each fault hits a healthy cluster (the promise is about one broker at a
// time).
func (f *Faulter) Settle() error { return f.C.WaitSettled(f.Topic, 60*time.Second) }

// killHeld and pauseHeld apply one held fault to a picked target and undo
// it even when the target's check failed.
func killHeld(pick func(*Faulter) (Target, error)) func(*Faulter) error {
	return func(f *Faulter) error {
		t, err := pick(f)
		if err != nil {
			return err
		}
		if err := f.C.Kill(t.Node); err != nil {
			return err
		}
		held := f.HoldOn(t)
		return errors.Join(held, f.C.Restart(t.Node))
	}
}

func pauseHeld(pick func(*Faulter) (Target, error)) func(*Faulter) error {
	return func(f *Faulter) error {
		t, err := pick(f)
		if err != nil {
			return err
		}
		if err := f.C.Pause(t.Node); err != nil {
			return err
		}
		held := f.HoldOn(t)
		return errors.Join(held, f.C.Resume(t.Node))
	}
}

func leader(f *Faulter) (Target, error)     { return f.LeaderTarget() }
func controller(f *Faulter) (Target, error) { return f.ControllerTarget() }
func random(f *Faulter) (Target, error)     { return f.RandomTarget() }

// Schedules is every schedule, by name order of the docs.
func Schedules() []Schedule {
	// Budgets are what the faults usually take (a hold of at most 18 s
	// and a restart); a slower run only ends the workload's producing
	// earlier, the final read still waits for the cluster.
	const hold = 25 * time.Second
	all := []Schedule{
		{Name: "kill-leader", Budget: hold, Faults: killHeld(leader)},
		{Name: "kill-controller", Budget: hold, Faults: killHeld(controller)},
		{Name: "kill-random", Budget: 3 * hold, Faults: killRandomTwice},
		{Name: "pause-leader", Budget: hold, Faults: pauseHeld(leader)},
		{Name: "pause-controller", Budget: hold, Faults: pauseHeld(controller)},
		{Name: "partition-leader", Budget: hold, Faults: func(f *Faulter) error {
			t, err := f.LeaderTarget()
			if err != nil {
				return err
			}
			if err := f.C.PartitionNode(t.Node); err != nil {
				return err
			}
			held := f.HoldOn(t)
			return errors.Join(held, f.C.Heal())
		}},
		{Name: "one-way", Budget: hold, Faults: func(f *Faulter) error {
			n, err := f.Leader()
			if err != nil {
				return err
			}
			if err := f.C.OneWay(n, f.Other(n)); err != nil {
				return err
			}
			f.Hold()
			return f.C.Heal()
		}},
		{Name: "flap", Budget: 3 * hold, Faults: func(f *Faulter) error {
			n, err := f.Leader()
			if err != nil {
				return err
			}
			// Half-periods of 2-8 s: around Serf's failure detection and
			// below the replica lag max, so the node flaps in and out.
			period := 4*time.Second + time.Duration(f.Rng.Int64N(int64(12*time.Second)))
			return f.C.Flap(n, period, 4)
		}},
		{Name: "wipe-restart", Budget: hold / 2, Faults: func(f *Faulter) error {
			return f.C.WipeAndRestart(f.Node())
		}},
		// A follower's disk is replaced and, while it catches up, the
		// leader crashes: the third replica has every acknowledged record,
		// so a correct election loses nothing. An empty replica left in
		// the ISR (and elected) loses everything the old leader had.
		{Name: "wipe-kill-leader", Budget: hold, Faults: func(f *Faulter) error {
			t, err := f.LeaderTarget()
			if err != nil {
				return err
			}
			if err := f.C.WipeAndRestart(f.Other(t.Node)); err != nil {
				return err
			}
			if err := f.C.Kill(t.Node); err != nil {
				return err
			}
			held := f.HoldOn(t)
			return errors.Join(held, f.C.Restart(t.Node))
		}},
		{Name: "torn-tail", Budget: hold / 2, Faults: func(f *Faulter) error {
			return f.C.TornTail(f.Node(), f.Rng)
		}},
		{Name: "rolling-restart", Budget: 2 * hold, Faults: func(f *Faulter) error {
			return f.C.RollingRestart(f.Topic, 60*time.Second)
		}},
		{Name: "full-restart", Budget: hold / 2, Faults: func(f *Faulter) error {
			return f.C.FullRestart()
		}},
		powerLoss(),
		// With min.insync.replicas 1, the followers of one partition stop
		// fetching (their packets to the leader's Kafka port dropped) until
		// the ISR is the leader alone, which keeps acknowledging; then the
		// leader dies. An unclean election makes a stale follower leader:
		// what only the old leader had is lost, and the suite must see it.
		// The clean twin keeps the partition offline until the leader
		// returns instead, losing nothing.
		{Name: "unclean-lone-leader", MinISR: 1, TopicConfigs: map[string]string{"unclean.leader.election.enable": "true"},
			Budget: 2 * hold, Faults: loneLeader},
		{Name: "clean-lone-leader", MinISR: 1, TopicConfigs: map[string]string{"unclean.leader.election.enable": "false"},
			Budget: 2 * hold, Faults: loneLeader},
		// acks=1 is not promised to survive a leader's death: reported, not
		// asserted.
		{Name: "kill-leader-acks1", Acks: "1", Budget: hold, Faults: killHeld(leader)},
		// Transactions under faults: the leader of a data partition, then
		// any node (the transaction coordinator among them).
		{Name: "kill-leader-txn", Transactional: true, Budget: hold, Faults: killHeld(leader)},
		{Name: "kill-random-txn", Transactional: true, Budget: 3 * hold, Faults: killRandomTwice},
		// The cluster grows to four nodes, rebalances (the controller
		// killed mid-move) and shrinks back to three (grow.go).
		{Name: "grow-rebalance-decommission", Spare: 1, Budget: 4 * hold, Faults: growRebalanceDecommission},
	}
	for i := range all {
		if all[i].Acks == "" {
			all[i].Acks = "all"
		}
		if all[i].MinISR == 0 {
			all[i].MinISR = 2
		}
		unclean := all[i].TopicConfigs["unclean.leader.election.enable"] == "true"
		all[i].Strict = all[i].Acks == "all" && !unclean
	}
	return all
}

// loneLeader shrinks a partition's ISR to its leader, lets it acknowledge
// alone, kills it, and brings it back only after a hold.
func loneLeader(f *Faulter) error {
	l, err := f.Leader()
	if err != nil {
		return err
	}
	for i := 1; i <= f.C.Size(); i++ {
		if i != l {
			if err := f.C.CutKafka(i, l); err != nil {
				return err
			}
		}
	}
	f.Hold() // past the replica lag max: the ISR shrinks to the leader
	if err := f.C.Kill(l); err != nil {
		return err
	}
	if err := f.C.Heal(); err != nil {
		return err
	}
	f.Hold()
	return f.C.Restart(l)
}

// killRandomTwice kills a random node for a hold, twice, settling between.
func killRandomTwice(f *Faulter) error {
	for round := 0; round < 2; round++ {
		if round > 0 {
			if err := f.Settle(); err != nil {
				return err
			}
		}
		if err := killHeld(random)(f); err != nil {
			return err
		}
	}
	return nil
}

// ScheduleByName finds a schedule.
func ScheduleByName(name string) (Schedule, error) {
	for _, s := range Schedules() {
		if s.Name == name {
			return s, nil
		}
	}
	return Schedule{}, fmt.Errorf("chaos: no schedule %q", name)
}
