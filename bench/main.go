// Command bench-compare runs the same workloads against a three-node mlog
// cluster and a three-node NATS JetStream cluster, both real processes on
// loopback that it starts and stops itself, interleaving the runs, and
// prints a Markdown table of medians with the mlog/NATS ratio. See
// README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type config struct {
	mlogBin, natsBin string
	quick            bool
	runs             int
	n1k, n100        int
	e2eRate          int
	natsMaxPending   int
	e2eDur           time.Duration
	fsyncs           int
	seed             uint64
	timeout          time.Duration
	out              string
	command          string
}

func main() {
	var c config
	flag.StringVar(&c.mlogBin, "mlog", "../bin/mlog", "the mlog binary")
	flag.StringVar(&c.natsBin, "nats-server", "nats-server", "the nats-server binary")
	flag.BoolVar(&c.quick, "quick", false, "one run of small counts, to check the harness in seconds")
	flag.IntVar(&c.runs, "runs", 5, "runs of each workload per system")
	flag.IntVar(&c.n1k, "records-1k", 200_000, "records of 1 KiB per produce run (also the single-node run)")
	flag.IntVar(&c.n100, "records-100", 500_000, "records of 100 B per produce run")
	flag.IntVar(&c.e2eRate, "e2e-rate", 10_000, "records/s of the end-to-end latency run")
	flag.DurationVar(&c.e2eDur, "e2e-duration", 10*time.Second, "length of the end-to-end latency run")
	flag.IntVar(&c.natsMaxPending, "nats-max-pending", 256, "PublishAsync acks outstanding (jetstream.WithPublishAsyncMaxPending)")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the payload PRNG")
	flag.IntVar(&c.fsyncs, "fsyncs", 2000, "4 KiB write + fdatasync rounds per run of the disk latency figure")
	flag.DurationVar(&c.timeout, "timeout", 15*time.Minute, "deadline for everything; servers are killed when it passes")
	flag.StringVar(&c.out, "out", "results/latest.md", "where the Markdown report is written as well as stdout")
	flag.StringVar(&c.command, "command", "", "the command line to print in the report (default: this one)")
	flag.Parse()
	if c.quick {
		c.runs, c.n1k, c.n100, c.e2eDur, c.timeout, c.fsyncs = 1, 5_000, 20_000, 2*time.Second, 3*time.Minute, 200
	}
	if c.command == "" {
		c.command = strings.Join(os.Args, " ")
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(1)
	}
}

func run(c config) (err error) {
	if c.runs < 1 || c.natsMaxPending < 1 || c.n1k < 1 || c.n100 < 1 || c.e2eRate < 1 || c.e2eDur <= 0 || c.fsyncs < 1 {
		return errors.New("runs, record counts, rate and duration must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	clk, err := clockTicks()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mlog-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	logf("generating payloads: %d × 1 KiB, %d × 100 B", c.n1k, c.n100)
	pool1k := newPool(c.seed, c.n1k, 1024)
	pool100 := newPool(c.seed+1, c.n100, 100)
	res := newResults()
	res.fsType = fsType(dir)

	// Three nodes each.
	var systems []*started
	defer func() {
		for _, s := range systems {
			if err != nil {
				s.dumpLogs()
			}
			s.Close()
		}
	}()
	m3, err := startMlog(ctx, "mlog3", c.mlogBin, dir, 3)
	if err != nil {
		return fmt.Errorf("mlog cluster: %w", err)
	}
	systems = append(systems, &started{m3, m3.procs})
	n3, err := startNATS(ctx, "nats3", c.natsBin, dir, 3, c.natsMaxPending)
	if err != nil {
		return fmt.Errorf("NATS cluster: %w", err)
	}
	systems = append(systems, &started{n3, n3.procs})
	// mlog once more with --fsync never, for the end-to-end latency
	// without the disk's fsync in it (the disk row says what that costs).
	m3n, err := startMlog(ctx, "mlog3-nofsync", c.mlogBin, dir, 3, "--fsync", "never")
	if err != nil {
		return fmt.Errorf("mlog cluster --fsync never: %w", err)
	}
	systems = append(systems, &started{m3n, m3n.procs})
	for r := 1; r <= c.runs; r++ {
		for _, s := range []system{m3, n3} {
			if err := clusterRun(ctx, c, clk, res, s, r, pool1k, pool100); err != nil {
				return fmt.Errorf("%s run %d: %w", s.Name(), r, err)
			}
		}
		if err := e2eRun(ctx, c, res, m3n, "e2e-nofsync", r, pool1k); err != nil {
			return fmt.Errorf("mlog --fsync never run %d: %w", r, err)
		}
		if err := diskRun(dir, res, c.fsyncs); err != nil {
			return fmt.Errorf("disk run %d: %w", r, err)
		}
	}
	for _, s := range systems {
		s.Close()
	}
	systems = nil

	// One node each, and mlog once more with --fsync never, which is
	// what NATS does by default (see README.md).
	m1, err := startMlog(ctx, "mlog1", c.mlogBin, dir, 1)
	if err != nil {
		return fmt.Errorf("mlog single node: %w", err)
	}
	systems = append(systems, &started{m1, m1.procs})
	m1n, err := startMlog(ctx, "mlog1-nofsync", c.mlogBin, dir, 1, "--fsync", "never")
	if err != nil {
		return fmt.Errorf("mlog single node --fsync never: %w", err)
	}
	systems = append(systems, &started{m1n, m1n.procs})
	n1, err := startNATS(ctx, "nats1", c.natsBin, dir, 1, c.natsMaxPending)
	if err != nil {
		return fmt.Errorf("NATS single node: %w", err)
	}
	systems = append(systems, &started{n1, n1.procs})
	for r := 1; r <= c.runs; r++ {
		for _, s := range []struct {
			sys    system
			prefix string
		}{{m1, "single"}, {n1, "single"}, {m1n, "single-nofsync"}} {
			name := fmt.Sprintf("single-1k-r%d", r)
			if err := produceRun(ctx, clk, res, s.sys, s.prefix, name, pool1k, false); err != nil {
				return fmt.Errorf("%s single node run %d: %w", s.sys.Name(), r, err)
			}
		}
	}
	for _, s := range systems {
		s.Close()
	}
	systems = nil

	md, err := report(c, res)
	if err != nil {
		return err
	}
	fmt.Print(md)
	if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(c.out, []byte(md), 0o644)
}

// started is a running system and its processes, for clean-up.
type started struct {
	system
	procs []*proc
}

func (s *started) dumpLogs() {
	for _, p := range s.procs {
		fmt.Fprintf(os.Stderr, "--- %s log tail ---\n%s\n", p.name, p.logTail())
	}
}

// clusterRun is one run of every three-node workload against s.
func clusterRun(ctx context.Context, c config, clk float64, res *results, s system, r int, pool1k, pool100 [][]byte) error {
	for _, w := range []struct {
		size string
		pool [][]byte
	}{{"1k", pool1k}, {"100", pool100}} {
		name := fmt.Sprintf("bench-%s-r%d", w.size, r)
		if err := produceRun(ctx, clk, res, s, "produce-"+w.size, name, w.pool, true); err != nil {
			return err
		}
	}
	return e2eRun(ctx, c, res, s, "e2e", r, pool1k)
}

// e2eRun measures end-to-end latency at the fixed rate on a fresh log and
// records p50 and p99 under prefix.
func e2eRun(ctx context.Context, c config, res *results, s system, prefix string, r int, pool [][]byte) error {
	name := fmt.Sprintf("bench-%s-r%d", prefix, r)
	sctx, cancel := stepContext(ctx)
	defer cancel()
	if err := s.CreateLog(sctx, name); err != nil {
		return err
	}
	logf("%s run %d: end-to-end (%s) at %d rec/s for %v", s.Name(), r, prefix, c.e2eRate, c.e2eDur)
	e, err := runE2E(sctx, s, name, pool, c.e2eRate, c.e2eDur)
	if err != nil {
		return fmt.Errorf("end-to-end: %w", err)
	}
	res.add(prefix+"-p50", s.Name(), percentile(e.latencies, 0.50))
	res.add(prefix+"-p99", s.Name(), percentile(e.latencies, 0.99))
	logf("  p50 %.2f ms, p99 %.2f ms (%d records at %.0f rec/s)", percentile(e.latencies, 0.5), percentile(e.latencies, 0.99), len(e.latencies), e.rate)
	if err := s.DeleteLog(sctx, name); err != nil {
		return err
	}
	return s.Alive()
}

// produceRun produces pool to a fresh log, records the figures under
// prefix, reads it all back when consume is set, and deletes the log.
func produceRun(ctx context.Context, clk float64, res *results, s system, prefix, name string, pool [][]byte, consume bool) error {
	sctx, cancel := stepContext(ctx)
	defer cancel()
	t0 := time.Now()
	if err := s.CreateLog(sctx, name); err != nil {
		return err
	}
	logf("%s %s: created in %v; produce %d × %d B", s.Name(), name, time.Since(t0).Round(time.Millisecond), len(pool), len(pool[0]))
	p, err := runProduce(sctx, s, name, pool, clk)
	if err != nil {
		return fmt.Errorf("produce to %s: %w", name, err)
	}
	sec := p.elapsed.Seconds()
	gb := float64(p.bytes) / 1e9
	res.add(prefix+"-rps", s.Name(), float64(p.records)/sec)
	res.add(prefix+"-mbps", s.Name(), float64(p.bytes)/1e6/sec)
	res.add(prefix+"-p50", s.Name(), percentile(p.acks, 0.50))
	res.add(prefix+"-p99", s.Name(), percentile(p.acks, 0.99))
	res.add(prefix+"-cpu", s.Name(), p.cpuSec/gb)
	logf("  %.0f rec/s, %.1f MB/s, ack p50 %.2f ms p99 %.2f ms, %.1f CPU-s/GB", float64(p.records)/sec, float64(p.bytes)/1e6/sec,
		percentile(p.acks, 0.5), percentile(p.acks, 0.99), p.cpuSec/gb)
	if consume {
		logf("%s %s: consume", s.Name(), name)
		cr, err := runConsume(sctx, s, name, pool)
		if err != nil {
			return fmt.Errorf("consume %s: %w", name, err)
		}
		cprefix := "consume-" + strings.TrimPrefix(prefix, "produce-")
		res.add(cprefix+"-rps", s.Name(), float64(cr.records)/cr.elapsed.Seconds())
		res.add(cprefix+"-mbps", s.Name(), float64(cr.bytes)/1e6/cr.elapsed.Seconds())
		logf("  %.0f rec/s, %.1f MB/s", float64(cr.records)/cr.elapsed.Seconds(), float64(cr.bytes)/1e6/cr.elapsed.Seconds())
	}
	t0 = time.Now()
	if err := s.DeleteLog(sctx, name); err != nil {
		return err
	}
	if err := s.Alive(); err != nil {
		return err
	}
	logf("  deleted %s in %v", name, time.Since(t0).Round(time.Millisecond))
	return nil
}

// stepContext bounds one workload, so that a hang names the step that hung
// well before the overall deadline.
func stepContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 4*time.Minute)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
