//go:build linux

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// RunConfig shapes every schedule's run.
type RunConfig struct {
	Bin string
	// Rate is verify's total records per second.
	Rate int
	// Partitions of the workload's topic (replication factor 3, min ISR 2).
	Partitions int
	// Warmup is how long the workload runs before the first fault, at
	// least; the run's random seed adds up to another Warmup.
	Warmup time.Duration
	// Tail is how long the workload keeps producing after the fault
	// budget, so that records are written to the healed cluster too.
	Tail time.Duration
	// HoldMin and HoldJitter: how long a fault is held.
	HoldMin, HoldJitter time.Duration
	// Settle bounds the wait for full ISRs after the faults.
	Settle time.Duration
	// ReplicaLagMax is passed to every broker; zero keeps its default.
	ReplicaLagMax time.Duration
}

// DefaultRunConfig holds faults 12-18 s: past the broker's default replica
// lag max (10 s) and Serf's failure detection.
func DefaultRunConfig(bin string) RunConfig {
	return RunConfig{Bin: bin, Rate: 300, Partitions: 3, Warmup: 3 * time.Second, Tail: 5 * time.Second,
		HoldMin: 12 * time.Second, HoldJitter: 6 * time.Second, Settle: 90 * time.Second}
}

// Result is one schedule run.
type Result struct {
	Schedule string
	Seed     uint64
	Acks     string
	Strict   bool
	Report   *Report
	// FaultErr is a fault that could not be applied (or undone); Settled
	// is false when the cluster did not get full ISRs back in time.
	FaultErr  error
	Settled   bool
	SettleErr error
	Elapsed   time.Duration
	// Logs is where the nodes' logs were kept, for a run that was not
	// clean.
	Logs string
}

// RunSchedule starts a fresh cluster, runs the verify workload for the
// schedule's length, injects its faults from a rand seeded with seed,
// undoes them, waits for the cluster to settle and returns verify's
// report. It fails t only for harness errors (cluster or verify could not
// run); violations are the caller's to judge.
func RunSchedule(t *testing.T, cfg RunConfig, s Schedule, seed uint64) Result {
	t.Helper()
	began := time.Now()
	rng := rand.New(rand.NewPCG(seed, 0x6d6c6f67)) // "mlog"
	opts := DefaultOptions(cfg.Bin)
	opts.ReplicaLagMax = cfg.ReplicaLagMax
	opts.Disk = s.Disk
	opts.Spare = s.Spare
	c := Start(t, opts)

	warmup := cfg.Warmup + time.Duration(rng.Int64N(int64(cfg.Warmup)+1))
	w := Workload{Topic: fmt.Sprintf("chaos-%s-%d", s.Name, seed), Partitions: cfg.Partitions, ReplicationFactor: 3,
		MinInsyncReplicas: s.MinISR, Acks: s.Acks, Producers: 2, Rate: cfg.Rate, Seed: seed,
		Duration: warmup + s.Budget + cfg.Tail,
		Args:     transactionalArgs(s),
		// The faults may overrun their budget (a slow restart or unmount):
		// the final read must outlast them and the settling after.
		FinalReadTimeout: s.Budget + cfg.Settle + 2*time.Minute}
	// The whole run: the workload, a final read that retries while the
	// cluster recovers, the checks, and generous slack.
	ctx, cancel := context.WithTimeout(context.Background(), w.Duration+cfg.Settle+5*time.Minute)
	defer cancel()
	if s.TopicConfigs != nil {
		if err := c.CreateTopic(w.Topic, cfg.Partitions, 3, s.MinISR, s.TopicConfigs); err != nil {
			t.Fatal(err)
		}
	}
	run, err := StartWorkload(ctx, cfg.Bin, c.Addrs(), w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-run.Done()
	})
	c.logf("schedule %s seed %d: verify for %v on %s (acks=%s)", s.Name, seed, w.Duration, w.Topic, s.Acks)

	res := Result{Schedule: s.Name, Seed: seed, Acks: s.Acks, Strict: s.Strict}
	// Faults need the topic's leaders and a healthy cluster to start from.
	if err := c.WaitTopic(w.Topic, cfg.Partitions, 60*time.Second); err != nil {
		t.Fatalf("%v\nverify stderr:\n%s", err, lastLines(run.Stderr(), 20))
	}
	if err := c.WaitSettled(w.Topic, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(warmup) // the workload runs on a healthy cluster first

	f := &Faulter{C: c, Rng: rng, Topic: w.Topic, Partitions: cfg.Partitions, HoldMin: cfg.HoldMin, HoldJitter: cfg.HoldJitter}
	faultStart := time.Now()
	res.FaultErr = s.Faults(f)
	if res.FaultErr != nil {
		c.logf("schedule %s seed %d: fault error: %v", s.Name, seed, res.FaultErr)
	}
	if d := time.Since(faultStart); d > s.Budget {
		c.logf("schedule %s: faults took %v, over their budget %v: the workload stopped before they ended", s.Name, d, s.Budget)
	}
	if err := c.Recover(); err != nil {
		t.Fatalf("undoing faults: %v", err)
	}
	if err := c.WaitSettled(w.Topic, cfg.Settle); err != nil {
		res.SettleErr = err
		c.logf("schedule %s seed %d: %v", s.Name, seed, err)
	} else {
		res.Settled = true
		c.logf("schedule %s seed %d: settled", s.Name, seed)
	}
	res.Report, err = run.Wait()
	res.Elapsed = time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Settled || res.FaultErr != nil || res.Report.Violations() > 0 || !res.Report.OK() {
		dir := filepath.Join(os.TempDir(), "mlog-chaos-logs", fmt.Sprintf("%s-seed%d-%s", s.Name, seed, c.Net.RunID))
		if err := c.KeepLogs(dir); err != nil {
			t.Errorf("keeping the nodes' logs: %v", err)
		} else {
			res.Logs = dir
			c.logf("schedule %s seed %d: node logs kept in %s", s.Name, seed, dir)
		}
	}
	return res
}

// transactionalArgs are verify's flags for a transactional schedule.
func transactionalArgs(s Schedule) []string {
	if !s.Transactional {
		return nil
	}
	return []string{"--transactional"}
}
