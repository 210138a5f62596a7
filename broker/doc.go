// Package broker is one mlog node: its Config, the partition replicas it
// holds, and the start-up of every part in order with shutdown in reverse.
// It is the only package that knows every other one; it implements
// protocol.Backend.
//
// Every broker is a cluster member; one started alone is a one-node
// cluster, on the same code path. Topic metadata lives in the Raft FSM
// (package cluster): the broker opens, leads or follows the replicas the
// FSM assigns it, asks the controller for metadata changes (forwarding
// them over the Kafka protocol when it is not the controller itself, see
// controllerClient), and hands its leaderships over before a graceful stop.
// The node's identity is in <data-dir>/meta.properties, written once.
//
// Lifecycle: Start runs its steps in order — Raft, the Kafka listener,
// Serf membership with the controller and the loops that follow metadata,
// retention, the HTTP listener — and when one fails, undoes the ones
// before it in reverse and returns that step's error. Every goroutine the
// broker starts is tracked and joined on stop, and every loop and
// background call runs under the broker's root context, cancelled first
// when shutdown begins. Opening and recovering replicas happens outside
// the lock that produce and fetch take.
package broker
