// Package verify owns `mlog verify`: a workload and a checker that prove no
// acknowledged record is lost, duplicated, moved or reordered by a
// Kafka-compatible cluster.
//
// config.go holds Config; run.go runs the phases below in order and
// history.go defines what they record (History) and the value format. A run
// has four phases, one file each:
//
//   - producer.go: --producers kgo producers write self-describing values
//     ("<run>-p<producer>-<seq>-<padding>") for a duration at a total rate,
//     recording every outcome: acknowledged (with the partition and offset
//     of the ack), failed (the client reported an error: it may or may not
//     be in the log) or unknown (still in flight when the run gave up).
//   - consumer.go: plain consumers of every partition and members of one
//     consumer group record every (partition, offset, value) they poll, in
//     order, with the group's assignment changes in between.
//   - finalread.go: after the producers stop, every partition is read from
//     its log start to its high watermark, retried until a deadline
//     because the cluster may still be recovering; replicas.go then reads
//     every replica directly (KIP-392 follower fetch) when the cluster
//     serves follower reads.
//   - checker.go turns that History into violations; report.go prints them.
//
// The checker is a pure function of a History, so tests and a fault harness
// can construct histories or call Run in process. Run owns its clients and
// goroutines and joins them before it returns.
//
// The package speaks only the Kafka protocol through franz-go (kgo, kadm,
// kmsg): it must never import mlog's broker, partition or storage packages,
// so it works against any Kafka-compatible cluster. It never changes data it
// did not write, except that it creates the topic it is told to use.
package verify
