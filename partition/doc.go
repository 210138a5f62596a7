// Package partition owns one replica of one partition: its storage.Log, the
// high watermark consumers may read up to, and the idempotent-producer state
// (per producer id, its epoch and last five batches' sequence ranges), which
// a clean close saves to producer.snapshot and open restores from it, or,
// when the log no longer ends where the snapshot says, rebuilds from the
// log's batch headers.
//
// Every partition is a replica of a replicated partition, whose role
// (leader or follower, leader epoch, replicas, ISR) comes from the cluster
// metadata through SetRole; a single-broker cluster is replication factor 1
// with the broker as leader and sole ISR member, not a separate mode. A
// leader's high watermark is the smallest log end offset over its ISR, its
// own counted as its durable offset when acks wait for fsync (the default),
// so a consumer never reads a batch a crash could still take back; a
// follower's is what its leader last told it.
//
// The package never touches the network; errors are sentinels the protocol
// layer maps to Kafka error codes.
package partition
