// Package cluster owns the cluster's metadata and the decisions about it:
// a Raft log (hashicorp/raft, raft-boltdb) replicating an FSM that holds the
// brokers, topics, partitions, replica assignments, leaders, leader epochs,
// ISRs, topic configs, the producer-id allocator, users' SCRAM
// credentials (stored and server keys, never passwords) and ACL bindings
// (package acl); and the controller,
// which runs on the Raft leader and turns membership changes into
// commands (register brokers, add Raft voters, move partition leadership
// to the first live ISR member with epoch + 1).
//
// A node that is the only voter of its Raft configuration (a one-node
// cluster starting or restarting) stands for election at once instead of
// waiting out a heartbeat timeout for a leader that cannot exist.
//
// Commands are typed and versioned JSON records; an unknown type or version
// is an error on every node alike, so the FSM stays deterministic. Snapshots
// are the whole state as JSON.
//
// The FSM publishes the state copy-on-write: each command builds a new
// State (copying only the topics and brokers it changes) and swaps it in
// with one atomic store; a published State is never changed again. Readers
// (every Metadata and group request) get the current one in O(1), shared
// and read-only: they must never change it, and copy what they need to.
//
// The package knows nothing of Kafka wire formats or files other than
// Raft's own; the broker forwards requests to the controller and applies
// what the FSM says to its local partitions.
package cluster
