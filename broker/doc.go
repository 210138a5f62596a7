// Package broker is one mlog node: its Config, the partitions it holds, and
// the start-up of every part in order (Raft, the Kafka listener, Serf
// membership, the controller, the loops that apply metadata to local
// replicas, retention) with shutdown in reverse. It is the only package
// that knows every other one; it implements protocol.Backend.
//
// With Config.Cluster set (what `mlog server` always does; a node with no
// peers is a one-node cluster) topic metadata lives in the Raft FSM
// (package cluster): this broker opens, leads or follows the replicas the
// FSM assigns it, forwards metadata changes to the controller, and hands
// its leaderships over before a graceful stop.
//
// With Config.Cluster nil the broker runs standalone, for embedding and
// tests: topic metadata and the producer-id allocator live in
// <data-dir>/metadata.json, replaced atomically on every change. Either
// way the node identity is in <data-dir>/meta.properties, written once.
package broker
