package broker

// What the external broker_test package may see of a broker's insides:
// exactly what its tests assert on, nothing a user of the package could
// call.

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
)

// Replica is b's replica of a partition, nil while it holds none.
func Replica(b *Broker, topic string, p int32) *partition.Partition {
	b.cl.mu.Lock()
	defer b.cl.mu.Unlock()
	return b.cl.parts[partKey{Topic: topic, Partition: p}]
}

// PauseReplication holds b's replica fetching back, or lets it go on.
func PauseReplication(b *Broker, paused bool) { b.pauseReplication(paused) }

// ReplicationParked reports whether every fetcher of b is paused and idle.
func ReplicationParked(b *Broker) bool { return b.replicationParked() }

// SnapshotMetadata takes a Raft snapshot of b's metadata now.
func SnapshotMetadata(b *Broker) error { return b.cl.node.Snapshot() }

// IsController reports whether b is the Raft leader.
func IsController(b *Broker) bool { return b.cl.node.IsLeader() }

// ReplicaClientID is the client id b fetches from its leaders with: it
// names b's current incarnation.
func ReplicaClientID(b *Broker) string { return replicaClientID(b.nodeID, b.cl.incarnation) }

// Registered reports whether b's metadata knows b's current incarnation:
// until then b opens no replica and takes no role.
func Registered(b *Broker) bool { return b.registered(b.cl.fsm.State()) }

// ServerStats is b's Kafka listener's connections and requests in flight.
func ServerStats(b *Broker) protocol.Stats {
	b.mu.Lock()
	s := b.servers[0]
	b.mu.Unlock()
	return s.Stats()
}

// Metrics is b's Prometheus registry.
func Metrics(b *Broker) prometheus.Gatherer { return b.metrics.Registry }
