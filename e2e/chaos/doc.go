// Package chaos injects real faults into a real mlog cluster and checks,
// with `mlog verify`, that no acknowledged record is lost, duplicated,
// reordered or divergent.
//
// Each broker is an `mlog server` process in its own Linux network
// namespace, mlogc-<run>-n<i>, with its own address 10.213.<k>.(10+i) on a
// bridge inside a hub namespace mlogc-<run>-hub; the test process, in the
// root namespace, reaches every node through a veth mlc<run> holding
// 10.213.<k>.1. Every name carries a random five-character run id and
// every run holds a lock (/run/mlogc/<run>.lock, and net-<k>.lock for its
// subnet), so parallel runs never collide and a new run deletes exactly
// the leftovers of runs whose process is gone. No traffic ever goes to an
// address outside these namespaces.
//
// Faults (methods of Cluster): Kill, Stop, Restart, Pause, Resume,
// WipeAndRestart, TornTail, PartitionNode, OneWay, CutKafka, Flap, Heal,
// RollingRestart, FullRestart, Join (a spare node, Options.Spare, joins:
// the cluster grows) and Retire (a decommissioned node stops for good),
// and PowerLossAll when Options.Disk puts
// every data dir on its own lossyfs mount (LossyDisk). Network faults are
// iptables DROP rules inside a node's own namespace, so the root namespace
// still reaches a partitioned node as a client; Heal deletes exactly the
// rules the harness added. Leader and Controller read each node's own
// Metadata answer. Node 1 always runs with --bootstrap, as mlog's local
// cluster scripts do: wiped and restarted, it must rejoin its peers' cluster.
//
// A schedule run (RunSchedule) is: a fresh three-node cluster, verify in
// the background for warm-up + the schedule's fault budget + a tail, the
// faults drawn from a rand seeded by the run's seed and each held longer
// than the timeouts that notice it (replica lag max 10 s, Serf failure
// detection), then heal, restart what is down, wait for full ISRs, and
// verify's final read and checks. acks=all schedules must end with zero
// violations; acks=1 and unclean-election schedules report what they find
// (Schedules lists them all). A run that was not clean (violations, a
// fault that did not take effect, a cluster that did not get full ISRs
// back) keeps its nodes' logs in $TMPDIR/mlog-chaos-logs/.
//
// Running: `go test ./e2e/chaos/` (root, ip and iptables needed; it skips
// with the reason otherwise, and fails instead under CI=true) runs the
// fault-mechanics tests and one short schedule. `make chaos` runs every
// schedule CHAOS_RUNS times (default 3) with MLOG_CHAOS=1 and writes
// results/latest.md. Environment:
//
//	MLOG_CHAOS=1         run the whole suite (TestChaos)
//	CHAOS_RUNS=n         runs per schedule (default 3), seeds CHAOS_SEED..+n-1
//	CHAOS_SEED=s         first seed (default 1)
//	CHAOS_SCHEDULES=a,b  only these schedules
//	CHAOS_RATE=r         verify's records per second (default 300)
//	CHAOS_RESULTS=path   results file (default results/latest.md)
//	MLOG_CHAOS_BIN=path  a prebuilt mlog binary instead of building one
package chaos
