package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
)

// The protocol.Backend methods: metadata from the Raft FSM, changes
// through the controller (forwarded to it over the Kafka protocol when this
// broker is not it).

// Cluster describes the live brokers and the controller. The controller is
// never -1: while an election is on, or before this broker has learnt the
// winner, it names itself, as Kafka's brokers name a live broker — admin
// requests sent to it are forwarded to the real controller anyway, and
// some clients (librdkafka's admin client) never ask again after a -1.
func (b *Broker) Cluster(listener string) protocol.ClusterInfo {
	st := b.cl.fsm.State()
	ci := protocol.ClusterInfo{ClusterID: st.ClusterID, ControllerID: b.nodeID}
	if ci.ClusterID == "" { // before the first controller named the cluster
		ci.ClusterID = b.clusterID
	}
	leader := b.cl.node.Leader()
	if br := st.Brokers[b.nodeID]; br == nil || !br.Alive {
		// Not registered yet (an election is on): clients must still
		// find this broker to talk to.
		host, port := b.advertisedFor(listener)
		ci.Brokers = append(ci.Brokers, protocol.BrokerInfo{NodeID: b.nodeID, Host: host, Port: port})
	}
	for _, id := range st.BrokerIDs() {
		br := st.Brokers[id]
		if br.Name == leader && br.Alive {
			ci.ControllerID = id
		}
		if !br.Alive || br.Decommissioned {
			continue // a decommissioned broker is on its way out: clients go elsewhere
		}
		addr, ok := br.Endpoint(listener)
		if !ok {
			// No such listener on that broker: Kafka leaves it out too.
			if ci.NoListener == nil {
				ci.NoListener = map[int32]bool{}
			}
			ci.NoListener[id] = true
			continue
		}
		host, port, err := splitHostPort(addr)
		if err != nil {
			continue
		}
		bi := protocol.BrokerInfo{NodeID: id, Host: host, Port: port}
		if br.Rack != "" {
			rack := br.Rack // not a pointer into the shared metadata
			bi.Rack = &rack
		}
		ci.Brokers = append(ci.Brokers, bi)
	}
	return ci
}

// PreferredReadReplica names, for a consumer in clientRack, an in-sync
// follower of the partition in that rack when this leader is in another
// (KIP-392), or -1.
func (b *Broker) PreferredReadReplica(topic string, id int32, clientRack string) int32 {
	if clientRack == "" || clientRack == b.cl.cfg.Rack {
		return -1
	}
	b.cl.mu.Lock()
	p := b.cl.parts[partKey{Topic: topic, Partition: id}]
	b.cl.mu.Unlock()
	if p == nil {
		return -1
	}
	for _, r := range p.Role().ISR {
		if br, ok := b.cl.fsm.Broker(r); r != b.nodeID && ok && br.Alive && br.Rack == clientRack {
			return r
		}
	}
	return -1
}

func topicInfo(t *cluster.Topic) protocol.TopicInfo {
	ti := protocol.TopicInfo{Name: t.Name, ID: t.ID, Internal: t.Internal}
	for i, p := range t.Partitions {
		ti.Partitions = append(ti.Partitions, protocol.PartitionInfo{ID: int32(i), Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR)})
	}
	return ti
}

// Topics lists every topic, sorted by name.
func (b *Broker) Topics() []protocol.TopicInfo {
	st := b.cl.fsm.State()
	var out []protocol.TopicInfo
	for _, n := range st.TopicNames() {
		out = append(out, topicInfo(st.Topics[n]))
	}
	return out
}

// notFound is what a topic this broker does not know gets while its
// metadata is still replaying: it may exist.
func (b *Broker) notFound(name string) error {
	if !b.cl.ready.Load() {
		return fmt.Errorf("%w: metadata still loading, %q may exist", protocol.ErrLeaderNotAvailable, name)
	}
	return fmt.Errorf("%w: %q", protocol.ErrUnknownTopic, name)
}

// Topic describes one topic.
func (b *Broker) Topic(name string) (protocol.TopicInfo, error) {
	if err := validTopicName(name); err != nil {
		return protocol.TopicInfo{}, err
	}
	t := b.cl.fsm.State().Topics[name]
	if t == nil {
		return protocol.TopicInfo{}, b.notFound(name)
	}
	return topicInfo(t), nil
}

// waitForTopic waits until this broker's FSM shows the topic (or not).
func (b *Broker) waitForTopic(ctx context.Context, name string, present bool) {
	seen := false // the metadata showed it present
	for {
		ch, changed := b.cl.fsm.Changed(), b.changed.Wait()
		// The metadata shows it, and so do this broker's replicas: a
		// client told the topic exists finds its replicas here open and in
		// their roles (a produce with acks=0 right after an auto-create is
		// never answered, so it must not meet a replica still opening).
		st := b.cl.fsm.State()
		_, inMeta := st.Topics[name]
		if present && !inMeta && (seen || b.cl.node.IsLeader()) {
			// Deleted again meanwhile (the controller's own metadata is
			// never behind): nothing more to wait for.
			return
		}
		seen = seen || inMeta
		if rs := b.cl.reconciled.Load(); rs != nil && b.registered(st) {
			st = rs
		}
		if _, ok := st.Topics[name]; ok == present {
			return
		}
		select {
		case <-ch:
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// AutoCreate creates a topic with defaults when auto-creation is on.
func (b *Broker) AutoCreate(ctx context.Context, name string) (protocol.TopicInfo, error) {
	if !b.cfg.AutoCreateTopics {
		return protocol.TopicInfo{}, fmt.Errorf("%w: %q (auto-creation is off)", protocol.ErrUnknownTopic, name)
	}
	t, err := b.CreateTopic(ctx, protocol.TopicSpec{Name: name, Partitions: -1, ReplicationFactor: -1}, false)
	if errors.Is(err, protocol.ErrTopicExists) {
		// Another request created it first (here or, forwarded, on the
		// controller): wait until this broker's metadata shows it.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b.waitForTopic(wctx, name, true)
		cancel()
		return b.Topic(name)
	}
	if err == nil {
		b.log.Info("auto-created topic", "topic", name, "partitions", len(t.Partitions))
	}
	return t, err
}

// defaultReplicationFactor is default.replication.factor as mlog enforces
// it: min(3, live brokers).
func (b *Broker) defaultReplicationFactor() int {
	return min(3, max(len(b.Cluster("").Brokers), 1))
}

// CreateTopic creates a topic (or only checks that it could).
func (b *Broker) CreateTopic(ctx context.Context, spec protocol.TopicSpec, validateOnly bool) (protocol.TopicInfo, error) {
	if err := validTopicName(spec.Name); err != nil {
		return protocol.TopicInfo{}, err
	}
	if spec.Partitions == -1 {
		spec.Partitions = b.cfg.DefaultPartitions
	}
	if spec.Partitions < 1 || spec.Partitions > b.cfg.MaxPartitions {
		return protocol.TopicInfo{}, fmt.Errorf("%w: %d, want 1 to %d", protocol.ErrInvalidPartitions, spec.Partitions, b.cfg.MaxPartitions)
	}
	if _, err := b.logConfig(b.cl.fsm.State(), spec.Configs); err != nil {
		return protocol.TopicInfo{}, err
	}
	rf := int(spec.ReplicationFactor)
	if rf == -1 {
		rf = b.defaultReplicationFactor()
	}
	n, err := controllerClient{b}.CreateTopic(ctx, spec, rf, validateOnly)
	if err != nil {
		return protocol.TopicInfo{}, err
	}
	if validateOnly {
		return protocol.TopicInfo{Name: spec.Name, Partitions: make([]protocol.PartitionInfo, n)}, nil
	}
	b.waitForTopic(ctx, spec.Name, true)
	return b.Topic(spec.Name)
}

// DeleteTopic removes a topic; every replica's data goes once the brokers
// see the metadata change.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if err := validTopicName(name); err != nil {
		return err
	}
	if err := (controllerClient{b}).DeleteTopic(ctx, name); err != nil {
		return err
	}
	b.waitForTopic(ctx, name, false)
	return nil
}

// CreatePartitions grows a topic to count partitions.
func (b *Broker) CreatePartitions(ctx context.Context, name string, count int32, validateOnly bool) error {
	if err := validTopicName(name); err != nil {
		return err
	}
	if count > b.cfg.MaxPartitions {
		return fmt.Errorf("%w: %d, at most %d", protocol.ErrInvalidPartitions, count, b.cfg.MaxPartitions)
	}
	return controllerClient{b}.CreatePartitions(ctx, name, count, validateOnly)
}

// Partition returns this broker's replica of a partition.
func (b *Broker) Partition(name string, id int32) (*partition.Partition, error) {
	b.cl.mu.Lock()
	p := b.cl.parts[partKey{Topic: name, Partition: id}]
	b.cl.mu.Unlock()
	if p != nil {
		return p, nil
	}
	t := b.cl.fsm.State().Topics[name]
	switch {
	case t == nil:
		if err := validTopicName(name); err != nil {
			return nil, err
		}
		return nil, b.notFound(name)
	case id < 0 || int(id) >= len(t.Partitions):
		return nil, fmt.Errorf("%w: %s-%d", protocol.ErrUnknownPartition, name, id)
	}
	return nil, fmt.Errorf("%w: %s-%d has no replica on broker %d", partition.ErrNotLeader, name, id, b.nodeID)
}

// TopicConfigs lists a topic's configs with the values enforced for it.
func (b *Broker) TopicConfigs(name string) ([]protocol.ConfigEntry, error) {
	t := b.cl.fsm.State().Topics[name]
	if t == nil {
		return nil, b.notFound(name)
	}
	rf := 0
	if len(t.Partitions) > 0 {
		rf = len(t.Partitions[0].TargetReplicas())
	}
	return b.topicConfigEntries(b.cl.fsm.State(), t.Configs, rf), nil
}

// NewProducerID hands out idempotent producer ids from a block the
// controller reserved in the metadata, so no restart reuses one.
func (b *Broker) NewProducerID(ctx context.Context) (int64, int16, error) {
	b.cl.mu.Lock()
	if b.cl.pidNext < b.cl.pidEnd {
		id := b.cl.pidNext
		b.cl.pidNext++
		b.cl.mu.Unlock()
		return id, 0, nil
	}
	b.cl.mu.Unlock()
	first, n, err := controllerClient{b}.AllocateProducerIDs(ctx)
	if err != nil {
		return 0, 0, err
	}
	b.cl.mu.Lock()
	b.cl.pidNext, b.cl.pidEnd = first+1, first+int64(n)
	b.cl.mu.Unlock()
	return first, 0, nil
}

// ReplicaFetched records a follower's progress and proposes its return to
// the ISR when it has caught up.
func (b *Broker) ReplicaFetched(topic string, id int32, replica int32, fetchOffset int64) {
	k := partKey{Topic: topic, Partition: id}
	b.cl.mu.Lock()
	p := b.cl.parts[k]
	b.cl.mu.Unlock()
	if p == nil {
		return
	}
	if prop := p.ReplicaFetched(replica, fetchOffset, time.Now()); prop != nil {
		b.proposeISR(k, p, prop)
	}
}

// The controller's side of forwarded requests: answered only by the
// controller, NOT_CONTROLLER elsewhere (the sender retries).

// AlterISR applies an ISR change on the controller.
func (b *Broker) AlterISR(ctx context.Context, c protocol.ISRChange) (int32, error) {
	if !b.cl.node.IsLeader() {
		return 0, protocol.ErrNotController
	}
	epoch, err := b.cl.ctrl.AlterISR(ctx, cluster.AlterISR{Topic: c.Topic, Partition: c.Partition, Leader: c.Leader,
		LeaderEpoch: c.LeaderEpoch, PartitionEpoch: c.PartitionEpoch, ISR: c.ISR})
	return epoch, protocol.Sentinel(err)
}

const producerIDBlockSize = 1000

// AllocateProducerIDs reserves a block of producer ids on the controller.
func (b *Broker) AllocateProducerIDs(ctx context.Context, _ int32) (int64, int32, error) {
	if !b.cl.node.IsLeader() {
		return 0, 0, protocol.ErrNotController
	}
	first, err := b.cl.ctrl.AllocateProducerIDs(ctx, producerIDBlockSize)
	return first, producerIDBlockSize, protocol.Sentinel(err)
}

// ControlledShutdown moves leadership away from a broker about to stop.
func (b *Broker) ControlledShutdown(ctx context.Context, id int32) error {
	if !b.cl.node.IsLeader() {
		return protocol.ErrNotController
	}
	if err := b.cl.ctrl.ControlledShutdown(ctx, id); err != nil {
		return protocol.Sentinel(err)
	}
	b.log.Info("controlled shutdown: leaderships moved", "broker", id)
	return nil
}

// Changed returns a channel closed when any partition may have new data.
func (b *Broker) Changed() <-chan struct{} { return b.changed.Wait() }

// LogDir describes the data directory and every replica in it, sorted.
func (b *Broker) LogDir() protocol.LogDirInfo {
	ld := protocol.LogDirInfo{Dir: b.cfg.DataDir, TotalBytes: -1, UsableBytes: -1}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(b.cfg.DataDir, &fs); err == nil {
		ld.TotalBytes = int64(fs.Blocks) * fs.Bsize
		ld.UsableBytes = int64(fs.Bavail) * fs.Bsize
	}
	for k, p := range b.replicas() {
		ld.Partitions = append(ld.Partitions, protocol.PartitionSize{Topic: k.Topic, Partition: k.Partition,
			Size: p.Log().Size(), OffsetLag: max(0, p.HighWatermark()-p.LogEndOffset())})
	}
	slices.SortFunc(ld.Partitions, func(a, c protocol.PartitionSize) int {
		return cmp.Or(strings.Compare(a.Topic, c.Topic), cmp.Compare(a.Partition, c.Partition))
	})
	return ld
}
