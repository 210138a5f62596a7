package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// results holds every run's figure: key -> system name -> one per run.
type results struct {
	vals   map[string]map[string][]float64
	fsType string // of the data directories
	// disk50 and disk99 are each run's 4 KiB write + fdatasync latency
	// percentiles (ms), the machine's limit for fsync-before-ack.
	disk50, disk99 []float64
	// diskMBps is each run's 1 MiB write + fdatasync rate (10^6 B/s).
	diskMBps []float64
}

func newResults() *results { return &results{vals: map[string]map[string][]float64{}} }

func (r *results) add(key, sys string, v float64) {
	if r.vals[key] == nil {
		r.vals[key] = map[string][]float64{}
	}
	r.vals[key][sys] = append(r.vals[key][sys], v)
}

// row is one line of the table: the mlog figure under mlogKey (key when
// empty) against the NATS figure under key.
type row struct {
	workload, metric string
	key, mlogKey     string
	format           string
	better           string
}

func rows(c config) []row {
	perf := func(workload, prefix, mlogPrefix string) []row {
		if mlogPrefix == "" {
			mlogPrefix = prefix
		}
		return []row{
			{workload, "records/s", prefix + "-rps", mlogPrefix + "-rps", "%.0f", "higher"},
			{workload, "MB/s", prefix + "-mbps", mlogPrefix + "-mbps", "%.1f", "higher"},
			{workload, "ack latency p50 (ms)", prefix + "-p50", mlogPrefix + "-p50", "%.2f", "lower"},
			{workload, "ack latency p99 (ms)", prefix + "-p99", mlogPrefix + "-p99", "%.2f", "lower"},
			{workload, "server CPU-s per GB", prefix + "-cpu", mlogPrefix + "-cpu", "%.1f", "lower"},
		}
	}
	var rs []row
	rs = append(rs, perf(fmt.Sprintf("produce %d × 1 KiB, 3 nodes", c.n1k), "produce-1k", "")...)
	rs = append(rs, perf(fmt.Sprintf("produce %d × 100 B, 3 nodes", c.n100), "produce-100", "")...)
	rs = append(rs,
		row{fmt.Sprintf("consume %d × 1 KiB, 3 nodes", c.n1k), "records/s", "consume-1k-rps", "", "%.0f", "higher"},
		row{fmt.Sprintf("consume %d × 1 KiB, 3 nodes", c.n1k), "MB/s", "consume-1k-mbps", "", "%.1f", "higher"},
		row{fmt.Sprintf("consume %d × 100 B, 3 nodes", c.n100), "records/s", "consume-100-rps", "", "%.0f", "higher"},
		row{fmt.Sprintf("consume %d × 100 B, 3 nodes", c.n100), "MB/s", "consume-100-mbps", "", "%.1f", "higher"},
		row{fmt.Sprintf("end-to-end, 1 KiB at %d rec/s for %v, 3 nodes", c.e2eRate, c.e2eDur), "latency p50 (ms)", "e2e-p50", "", "%.2f", "lower"},
		row{fmt.Sprintf("end-to-end, 1 KiB at %d rec/s for %v, 3 nodes", c.e2eRate, c.e2eDur), "latency p99 (ms)", "e2e-p99", "", "%.2f", "lower"},
		row{fmt.Sprintf("end-to-end, 1 KiB at %d rec/s for %v, 3 nodes, mlog --fsync never", c.e2eRate, c.e2eDur), "latency p50 (ms)", "e2e-p50", "e2e-nofsync-p50", "%.2f", "lower"},
		row{fmt.Sprintf("end-to-end, 1 KiB at %d rec/s for %v, 3 nodes, mlog --fsync never", c.e2eRate, c.e2eDur), "latency p99 (ms)", "e2e-p99", "e2e-nofsync-p99", "%.2f", "lower"},
	)
	rs = append(rs, perf(fmt.Sprintf("produce %d × 1 KiB, 1 node", c.n1k), "single", "")...)
	rs = append(rs, perf(fmt.Sprintf("produce %d × 1 KiB, 1 node, mlog --fsync never", c.n1k), "single", "single-nofsync")...)
	return rs
}

// report renders the Markdown that is printed and written to c.out.
func report(c config, res *results) (string, error) {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# mlog vs NATS JetStream\n\n")
	w("- Command: `%s`\n", c.command)
	w("- Date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	w("- Machine: %d CPUs (nproc), %s, Linux %s, data directories on %s\n", runtime.NumCPU(), cpuModel(), kernel(), res.fsType)
	w("- Versions: mlog %s; %s; clients franz-go %s, nats.go %s\n", gitCommit(), natsVersion(c.natsBin), depVersion("github.com/twmb/franz-go"), depVersion("github.com/nats-io/nats.go"))
	w("- Disk: a 4 KiB write + fdatasync in the data directory takes p50 %.2f ms, p99 %.2f ms (medians over the runs of %d rounds each, measured between them): the floor under any latency of a system that fsyncs before it acks\n",
		median(res.disk50), median(res.disk99), c.fsyncs)
	w("- Disk: 1 MiB writes, each followed by fdatasync, go at %.1f MB/s (median over the runs): every replica of a three-node cluster on this one disk writes each record and fsyncs it, so 3 × a produce's MB/s is what they ask of it\n",
		median(res.diskMBps))
	w("- Runs: %d per system per workload, interleaved (mlog run 1, NATS run 1, mlog run 2, …); each figure is the median of the runs\n", c.runs)
	w("- Records: produce %d × 1 KiB and %d × 100 B (random bytes from a seeded ChaCha8 stream, no compression), each read back in full; end-to-end %d rec/s × %v of 1 KiB; single node %d × 1 KiB\n\n",
		c.n1k, c.n100, c.e2eRate, c.e2eDur, c.n1k)
	w("| workload | metric | mlog | NATS | mlog/NATS | better |\n")
	w("| --- | --- | ---: | ---: | ---: | --- |\n")
	for _, r := range rows(c) {
		mk := r.mlogKey
		if mk == "" {
			mk = r.key
		}
		m, mok := res.vals[mk]["mlog"]
		n, nok := res.vals[r.key]["NATS"]
		if !mok || !nok {
			return "", fmt.Errorf("no figures for %s / %s", mk, r.key)
		}
		mv, nv := median(m), median(n)
		ratio := "n/a"
		if nv != 0 {
			ratio = fmt.Sprintf("%.2f", mv/nv)
		}
		w("| %s | %s | "+r.format+" | "+r.format+" | %s | %s |\n", r.workload, r.metric, mv, nv, ratio, r.better)
	}
	w("\nA ratio above 1 favours mlog where higher is better (records/s, MB/s) and favours NATS where lower is better (latency, CPU-s per GB).\n")
	w("MB is 10^6 bytes of record values. Server CPU-s per GB: utime+stime of every server process, from /proc/<pid>/stat, over a produce run, per 10^9 bytes of values.\n\n")
	w("Settings: mlog `--fsync always` (the default: acks are sent after fsync) unless the row says otherwise, topic with 1 partition, RF = nodes, min.insync.replicas 2 (1 on one node), kgo defaults (acks=all, idempotent, 10 ms linger) with compression off. ")
	w("NATS: nats-server with JetStream file storage, stream R = nodes, PublishAsync with %d acks outstanding, an ordered consumer; nats-server syncs its files on an interval, not before each ack. ", c.natsMaxPending)
	w("Both clients connect to the partition or stream leader.\n\n")
	w("Ack latency is from Send to ack with the producer kept full, so it is mostly time queued in the client: kgo buffers up to 50 000 records, PublishAsync stops at %d outstanding. The end-to-end rows compare latency at the same fixed load, with kgo's linger set to 0 there (a producer set up for latency; NATS publishes at once).\n\n", c.natsMaxPending)
	w("### Every run\n\n| figure | mlog | NATS |\n| --- | --- | --- |\n")
	for _, r := range rows(c) {
		mk := r.mlogKey
		if mk == "" {
			mk = r.key
		}
		w("| %s, %s | %s | %s |\n", r.workload, r.metric, joinf(r.format, res.vals[mk]["mlog"]), joinf(r.format, res.vals[r.key]["NATS"]))
	}
	return b.String(), nil
}

func joinf(format string, v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, ", ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func output(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func kernel() string    { return output("uname", "-r") }
func gitCommit() string { return output("git", "rev-parse", "--short", "HEAD") }

// fsType names the filesystem under dir (tmpfs would make fsync free).
func fsType(dir string) string {
	if t := output("findmnt", "-n", "-o", "FSTYPE", "-T", dir); t != "unknown" {
		return t
	}
	return output("stat", "-f", "-c", "%T", dir)
}

func natsVersion(bin string) string { return output(bin, "--version") }

func depVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return "unknown"
}
