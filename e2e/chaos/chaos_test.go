//go:build linux

package chaos

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireVerify fails when the binary has no `verify` command: the
// schedules cannot check anything without it.
func requireVerify(t *testing.T, bin string) {
	t.Helper()
	out, err := exec.Command(bin, "verify", "--help").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("json")) {
		t.Fatalf("%s has no `verify --json` (%v): the chaos schedules need it\n%s", bin, err, out)
	}
}

// The smoke run of `go test`/`make test`: one short kill-leader schedule
// (the leader of a seeded partition SIGKILLed for 11-13 s, past the
// replica lag max, then restarted) under an acks=all workload, which must
// end with zero violations.
func TestSmokeKillLeader(t *testing.T) { smoke(t, "kill-leader") }

// TestSmokeKillLeaderTxn is the smoke schedule with verify's transactional
// workload: committed transactions whole, aborted ones invisible, while a
// partition leader is killed and restarted.
func TestSmokeKillLeaderTxn(t *testing.T) {
	res := smoke(t, "kill-leader-txn")
	if res.Report == nil || res.Report.Aborted == 0 || res.Report.Acknowledged == 0 {
		t.Fatalf("the transactional workload committed or aborted nothing: %+v", res.Report)
	}
}

// TestSmokeGrowRebalanceDecommission grows a three-node cluster to four
// (each node in its own network namespace, advertising its own address),
// rebalances onto the new node with the controller killed mid-move, and
// decommissions and retires another node, under an acks=all workload that
// must end with zero violations.
func TestSmokeGrowRebalanceDecommission(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the grow schedule takes about two minutes; make test runs it")
	}
	RequireNetns(t)
	bin := mlogBin(t)
	requireVerify(t, bin)
	cfg := DefaultRunConfig(bin)
	cfg.Rate, cfg.Warmup, cfg.Tail = 200, 2*time.Second, 3*time.Second
	cfg.HoldMin, cfg.HoldJitter = 11*time.Second, 2*time.Second
	s, err := ScheduleByName("grow-rebalance-decommission")
	if err != nil {
		t.Fatal(err)
	}
	res := RunSchedule(t, cfg, s, uint64(envInt(t, "CHAOS_SEED", 1)))
	logResult(t, res)
	checkResult(t, res)
}

// smoke runs one short schedule (a 16 s fault budget, 200 records/s)
// that must end with zero violations.
func smoke(t *testing.T, schedule string) Result {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the smoke schedule takes about 30 s; make test runs it")
	}
	RequireNetns(t)
	bin := mlogBin(t)
	requireVerify(t, bin)
	cfg := DefaultRunConfig(bin)
	cfg.Rate, cfg.Warmup, cfg.Tail = 200, 2*time.Second, 3*time.Second
	cfg.HoldMin, cfg.HoldJitter = 11*time.Second, 2*time.Second
	s, err := ScheduleByName(schedule)
	if err != nil {
		t.Fatal(err)
	}
	s.Budget = 16 * time.Second
	res := RunSchedule(t, cfg, s, uint64(envInt(t, "CHAOS_SEED", 1)))
	logResult(t, res)
	checkResult(t, res)
	return res
}

// TestChaos is `make chaos`: every schedule (or CHAOS_SCHEDULES) run
// CHAOS_RUNS times with seeds CHAOS_SEED, CHAOS_SEED+1, ...; the results
// table goes to stdout and CHAOS_RESULTS. acks=all schedules must show no
// violation.
func TestChaos(t *testing.T) {
	if os.Getenv("MLOG_CHAOS") != "1" {
		t.Skip("the full chaos suite takes tens of minutes: run it with MLOG_CHAOS=1 (make chaos); go test runs TestSmokeKillLeader")
	}
	RequireNetns(t)
	bin := mlogBin(t)
	requireVerify(t, bin)
	cfg := DefaultRunConfig(bin)
	cfg.Rate = envInt(t, "CHAOS_RATE", cfg.Rate)
	runs := envInt(t, "CHAOS_RUNS", 3)
	base := envInt(t, "CHAOS_SEED", 1)
	var only []string
	if v := os.Getenv("CHAOS_SCHEDULES"); v != "" {
		only = strings.Split(v, ",")
		for _, name := range only {
			if _, err := ScheduleByName(name); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := os.Getenv("CHAOS_RESULTS")
	if out == "" {
		out = filepath.Join("results", "latest.md")
	}

	var (
		mu      sync.Mutex
		results []Result
		began   = time.Now()
		rev     = commit()
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		header := fmt.Sprintf("%s, commit %s, %d run(s) per schedule from seed %d, verify at %d records/s, faults held %v-%v, took %v.\n"+
			"Reproduce one run: `MLOG_CHAOS=1 CHAOS_SCHEDULES=<schedule> CHAOS_SEED=<seed> CHAOS_RUNS=1 make chaos`.",
			began.UTC().Format("2006-01-02 15:04 UTC"), rev, runs, base, cfg.Rate, cfg.HoldMin, cfg.HoldMin+cfg.HoldJitter,
			time.Since(began).Round(time.Second))
		var b bytes.Buffer
		if err := WriteResults(&b, results, header); err != nil {
			t.Error(err)
			return
		}
		fmt.Print("\n" + b.String())
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	})
	for _, s := range Schedules() {
		if only != nil && !slices.Contains(only, s.Name) {
			continue
		}
		for r := 0; r < runs; r++ {
			seed := uint64(base + r)
			t.Run(fmt.Sprintf("%s/seed=%d", s.Name, seed), func(t *testing.T) {
				done := false
				defer func() {
					if !done { // the harness failed the run (t.Fatal)
						mu.Lock()
						results = append(results, Result{Schedule: s.Name, Seed: seed, Acks: s.Acks, Strict: s.Strict,
							FaultErr: fmt.Errorf("harness error: see the test log")})
						mu.Unlock()
					}
				}()
				res := RunSchedule(t, cfg, s, seed)
				done = true
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
				logResult(t, res)
				checkResult(t, res)
			})
		}
	}
}

// checkResult fails t when an acks=all run found a violation or could not
// finish its final read, and reports fault errors.
func checkResult(t *testing.T, res Result) {
	t.Helper()
	if res.FaultErr != nil {
		t.Errorf("%s seed %d: fault: %v", res.Schedule, res.Seed, res.FaultErr)
	}
	if !res.Strict {
		return
	}
	rep := res.Report
	if rep.Violations() > 0 || !rep.OK() {
		var b strings.Builder
		for kind, ex := range rep.Examples {
			fmt.Fprintf(&b, "\n  %s: %s", kind, strings.Join(ex[:min(len(ex), 5)], "; "))
		}
		t.Errorf("%s seed %d acks=%s: %d violations (lost %d, duplicated %d, multi-value %d, vanished %d, reordered %d, poll skips %d, divergent %d), final read %q, settled %v%s",
			res.Schedule, res.Seed, res.Acks, rep.Violations(), rep.Lost, rep.Duplicated, rep.MultiValueOffset, rep.Vanished,
			rep.Reordered, rep.PollSkips, rep.Divergent, rep.FinalRead, res.Settled, b.String())
	}
}

func logResult(t *testing.T, res Result) {
	t.Helper()
	rep := res.Report
	t.Logf("%s seed %d acks=%s: acknowledged %d failed %d unknown %d; lost %d duplicated %d reordered %d divergent %d (violations %d); final read %s; replica check %s; settled %v; longest gap between acks %d ms; %v",
		res.Schedule, res.Seed, res.Acks, rep.Acknowledged, rep.Failed, rep.Unknown, rep.Lost, rep.Duplicated, rep.Reordered,
		rep.Divergent, rep.Violations(), rep.FinalRead, rep.ReplicaCheck, res.Settled, rep.LongestAckGapMs, res.Elapsed.Round(time.Second))
	if rep.Aborted > 0 || rep.AbortedVisible > 0 || rep.TornTransactions > 0 {
		t.Logf("%s seed %d transactions: aborted %d, aborted visible %d, torn %d", res.Schedule, res.Seed, rep.Aborted, rep.AbortedVisible, rep.TornTransactions)
	}
}

// commit names the tree the binary was built from.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}
