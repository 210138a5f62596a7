package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
)

// The protocol.Backend methods as a cluster member answers them: metadata
// from the Raft FSM, changes through the controller (forwarded to it over
// the Kafka protocol when this broker is not it).

func (b *Broker) clusterInfo() protocol.ClusterInfo {
	st := b.cl.fsm.State()
	ci := protocol.ClusterInfo{ClusterID: b.clusterID, ControllerID: -1}
	leader := b.cl.node.Leader()
	if br := st.Brokers[b.nodeID]; br == nil || !br.Alive {
		// Not registered yet (an election is on): clients must still
		// find this broker to talk to.
		host, port := b.advertised()
		ci.Brokers = append(ci.Brokers, protocol.BrokerInfo{NodeID: b.nodeID, Host: host, Port: port})
	}
	for _, id := range st.BrokerIDs() {
		br := st.Brokers[id]
		if br.Name == leader {
			ci.ControllerID = id
		}
		if !br.Alive {
			continue
		}
		host, port, err := splitHostPort(br.KafkaAddr)
		if err != nil {
			continue
		}
		bi := protocol.BrokerInfo{NodeID: id, Host: host, Port: port}
		if br.Rack != "" {
			bi.Rack = &br.Rack
		}
		ci.Brokers = append(ci.Brokers, bi)
	}
	return ci
}

// PreferredReadReplica names, for a consumer in clientRack, an in-sync
// follower of the partition in that rack when this leader is in another
// (KIP-392), or -1.
func (b *Broker) PreferredReadReplica(topic string, id int32, clientRack string) int32 {
	if b.cl == nil || clientRack == "" || clientRack == b.cl.cfg.Rack {
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

func (b *Broker) clusterTopics() []protocol.TopicInfo {
	st := b.cl.fsm.State()
	var out []protocol.TopicInfo
	for _, n := range st.TopicNames() {
		out = append(out, topicInfo(st.Topics[n]))
	}
	return out
}

// errNotReady is what a topic this broker does not know gets while its
// metadata is still replaying: it may exist.
func (b *Broker) notFound(name string) error {
	if !b.cl.ready.Load() {
		return fmt.Errorf("%w: metadata still loading, %q may exist", protocol.ErrLeaderNotAvailable, name)
	}
	return fmt.Errorf("%w: %q", protocol.ErrUnknownTopic, name)
}

func (b *Broker) clusterTopic(name string) (protocol.TopicInfo, error) {
	t := b.cl.fsm.State().Topics[name]
	if t == nil {
		return protocol.TopicInfo{}, b.notFound(name)
	}
	return topicInfo(t), nil
}

// fromCluster maps the cluster package's errors to the protocol's.
func fromCluster(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrTopicExists):
		return fmt.Errorf("%w: %w", protocol.ErrTopicExists, err)
	case errors.Is(err, cluster.ErrUnknownTopic):
		return fmt.Errorf("%w: %w", protocol.ErrUnknownTopic, err)
	case errors.Is(err, cluster.ErrUnknownPartition):
		return fmt.Errorf("%w: %w", protocol.ErrUnknownPartition, err)
	case errors.Is(err, cluster.ErrNotEnoughBrokers):
		return fmt.Errorf("%w: %w", protocol.ErrInvalidReplication, err)
	case errors.Is(err, cluster.ErrInvalidPartitionCount):
		return fmt.Errorf("%w: %w", protocol.ErrInvalidPartitions, err)
	case errors.Is(err, cluster.ErrStaleEpoch):
		return fmt.Errorf("%w: %w", protocol.ErrStaleISRChange, err)
	case errors.Is(err, cluster.ErrInvalidISR):
		return fmt.Errorf("%w: %w", protocol.ErrInvalidISR, err)
	case errors.Is(err, cluster.ErrNotLeader):
		return fmt.Errorf("%w: %w", protocol.ErrNotController, err)
	}
	return err
}

// waitForTopic waits until this broker's FSM shows the topic (or not).
func (b *Broker) waitForTopic(ctx context.Context, name string, present bool) {
	for {
		ch := b.cl.fsm.Changed()
		_, ok := b.cl.fsm.State().Topics[name]
		if ok == present {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func (b *Broker) clusterCreateTopic(ctx context.Context, spec protocol.TopicSpec, validateOnly bool) (protocol.TopicInfo, error) {
	rf := int(spec.ReplicationFactor)
	if rf == -1 {
		rf = min(3, max(len(b.clusterInfo().Brokers), 1))
	}
	if b.cl.node.IsLeader() {
		id := newTopicID()
		t, err := b.cl.ctrl.CreateTopic(ctx, spec.Name, cluster.TopicID(id), int(spec.Partitions), rf, spec.Configs, validateOnly)
		if err != nil {
			return protocol.TopicInfo{}, fromCluster(err)
		}
		return topicInfo(t), nil
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.ValidateOnly, req.TimeoutMillis = 7, validateOnly, 10_000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = spec.Name, spec.Partitions, int16(rf)
	for k, v := range spec.Configs {
		rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: &v})
	}
	req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
	resp, err := b.forwardAdmin(ctx, req)
	if err != nil {
		return protocol.TopicInfo{}, err
	}
	r := resp.(*kmsg.CreateTopicsResponse).Topics[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return protocol.TopicInfo{}, err
	}
	if validateOnly {
		return protocol.TopicInfo{Name: spec.Name, Partitions: make([]protocol.PartitionInfo, r.NumPartitions)}, nil
	}
	b.waitForTopic(ctx, spec.Name, true)
	return b.clusterTopic(spec.Name)
}

// forwardAdmin sends an admin request to the controller, retrying while
// the controller moves.
func (b *Broker) forwardAdmin(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	resp, err := b.toController(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", protocol.ErrNotController, err)
	}
	return resp, nil
}

func (b *Broker) clusterDeleteTopic(ctx context.Context, name string) error {
	if b.cl.node.IsLeader() {
		return fromCluster(b.cl.ctrl.DeleteTopic(ctx, name))
	}
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version, req.TimeoutMillis, req.TopicNames = 5, 10_000, []string{name}
	resp, err := b.forwardAdmin(ctx, req)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode); err != nil {
		return err
	}
	b.waitForTopic(ctx, name, false)
	return nil
}

func (b *Broker) clusterCreatePartitions(ctx context.Context, name string, count int32, validateOnly bool) error {
	if b.cl.node.IsLeader() {
		return fromCluster(b.cl.ctrl.CreatePartitions(ctx, name, int(count), validateOnly))
	}
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version, req.TimeoutMillis, req.ValidateOnly = 3, 10_000, validateOnly
	req.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: name, Count: count}}
	resp, err := b.forwardAdmin(ctx, req)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode)
}

func (b *Broker) clusterPartition(name string, id int32) (*partition.Partition, error) {
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

func (b *Broker) clusterTopicConfigs(name string) ([]protocol.ConfigEntry, error) {
	t := b.cl.fsm.State().Topics[name]
	if t == nil {
		return nil, b.notFound(name)
	}
	return b.topicConfigEntries(t.Configs), nil
}

// clusterProducerID hands out ids from a block the controller reserved.
func (b *Broker) clusterProducerID(ctx context.Context) (int64, int16, error) {
	b.cl.mu.Lock()
	if b.cl.pidNext < b.cl.pidEnd {
		id := b.cl.pidNext
		b.cl.pidNext++
		b.cl.mu.Unlock()
		return id, 0, nil
	}
	b.cl.mu.Unlock()
	var first int64
	var n int32
	if b.cl.node.IsLeader() {
		var err error
		if first, n, err = b.AllocateProducerIDs(ctx, b.nodeID); err != nil {
			return 0, 0, err
		}
	} else {
		req := kmsg.NewPtrAllocateProducerIDsRequest()
		req.BrokerID = b.nodeID
		resp, err := b.forwardAdmin(ctx, req)
		if err != nil {
			return 0, 0, err
		}
		r := resp.(*kmsg.AllocateProducerIDsResponse)
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return 0, 0, err
		}
		first, n = r.ProducerIDStart, r.ProducerIDLen
	}
	b.cl.mu.Lock()
	b.cl.pidNext, b.cl.pidEnd = first+1, first+int64(n)
	b.cl.mu.Unlock()
	return first, 0, nil
}

// ReplicaFetched records a follower's progress and proposes its return to
// the ISR when it has caught up.
func (b *Broker) ReplicaFetched(topic string, id int32, replica int32, fetchOffset int64) {
	if b.cl == nil {
		return
	}
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

// AlterISR applies an ISR change on the controller.
func (b *Broker) AlterISR(ctx context.Context, c protocol.ISRChange) (int32, error) {
	if b.cl == nil || !b.cl.node.IsLeader() {
		return 0, protocol.ErrNotController
	}
	epoch, err := b.cl.ctrl.AlterISR(ctx, cluster.AlterISR{Topic: c.Topic, Partition: c.Partition, Leader: c.Leader,
		LeaderEpoch: c.LeaderEpoch, PartitionEpoch: c.PartitionEpoch, ISR: c.ISR})
	return epoch, fromCluster(err)
}

const producerIDBlockSize = 1000

// AllocateProducerIDs reserves a block of producer ids on the controller.
func (b *Broker) AllocateProducerIDs(ctx context.Context, _ int32) (int64, int32, error) {
	if b.cl == nil || !b.cl.node.IsLeader() {
		return 0, 0, protocol.ErrNotController
	}
	first, err := b.cl.ctrl.AllocateProducerIDs(ctx, producerIDBlockSize)
	return first, producerIDBlockSize, fromCluster(err)
}

// ControlledShutdown moves leadership away from a broker about to stop.
func (b *Broker) ControlledShutdown(ctx context.Context, id int32) error {
	if b.cl == nil || !b.cl.node.IsLeader() {
		return protocol.ErrNotController
	}
	if err := b.cl.ctrl.ControlledShutdown(ctx, id); err != nil {
		return fromCluster(err)
	}
	b.log.Info("controlled shutdown: leaderships moved", "broker", id)
	return nil
}
