package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/group"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/storage/batch"
	"github.com/mlog/mlog/txn"
)

// internalLog is one replica of an internal topic (__consumer_offsets,
// __transaction_state) as its coordinator uses it.
type internalLog struct{ p *partition.Partition }

// Commit appends records and waits for acks=all.
func (l internalLog) Commit(ctx context.Context, recs []batch.Record) error {
	a, err := l.p.Append(batch.Build(recs))
	if err != nil {
		return err
	}
	_, err = l.p.WaitAck(ctx, a, -1)
	return err
}

// CommitTxn appends records as a transactional producer's batch and waits
// for acks=all.
func (l internalLog) CommitTxn(ctx context.Context, recs []batch.Record, producerID int64, producerEpoch int16) error {
	a, err := l.p.AppendForTxn(batch.BuildTxn(recs, producerID, producerEpoch))
	if err != nil {
		return err
	}
	_, err = l.p.WaitAck(ctx, a, -1)
	return err
}

// Replay reads every record from the log start to its end, each with its
// batch's header (a control batch's record is its marker).
func (l internalLog) Replay(fn func(batch.Header, batch.Record) error) error {
	log := l.p.Log()
	for off := log.LogStartOffset(); off < log.LogEndOffset(); {
		reg, err := log.Read(off, 1<<20, -1)
		if err != nil {
			return err
		}
		b, err := reg.Bytes()
		reg.Release()
		if err != nil {
			return err
		}
		if len(b) == 0 {
			return nil
		}
		it := batch.NewIter(b)
		for it.Next() {
			recs, err := batch.Records(it.Batch())
			if err != nil {
				return fmt.Errorf("broker: %s at %d: %w", l.p.Topic(), it.Header().BaseOffset, err)
			}
			for _, r := range recs {
				if r.Offset < off {
					continue
				}
				if err := fn(it.Header(), r); err != nil {
					return err
				}
			}
			off = it.Header().LastOffset() + 1
		}
		if it.Err() != nil {
			return it.Err()
		}
	}
	return nil
}

// offsetsPartitions is how many partitions __consumer_offsets has (or
// will have when created).
func (b *Broker) offsetsPartitions() int {
	if t, err := b.Topic(group.OffsetsTopic); err == nil && len(t.Partitions) > 0 {
		return len(t.Partitions)
	}
	return int(b.cfg.OffsetsPartitions)
}

// offsetsReplicationFactor is offsets.topic.replication.factor: as
// configured, or min(3, this node and its configured peers).
func (b *Broker) offsetsReplicationFactor() int16 {
	if rf := b.cfg.OffsetsReplicationFactor; rf > 0 {
		return rf
	}
	return int16(min(3, 1+len(b.cfg.Cluster.Peers)))
}

// Coordinator key types (FindCoordinator).
const (
	CoordinatorGroup       int8 = 0
	CoordinatorTransaction int8 = 1
)

// FindCoordinator returns the leader of the internal partition holding a
// consumer group's offsets (key type 0) or a transactional id's state (1),
// creating the internal topic on first need — only once
// offsets.topic.replication.factor brokers are alive, as Kafka does: made
// earlier, it would keep fewer replicas for good.
func (b *Broker) FindCoordinator(ctx context.Context, keyType int8, name, listener string) (protocol.BrokerInfo, error) {
	topic, partitions := group.OffsetsTopic, b.cfg.OffsetsPartitions
	if keyType == CoordinatorTransaction {
		topic, partitions = txn.StateTopic, b.cfg.TransactionStatePartitions
	}
	t, err := b.Topic(topic)
	if errors.Is(err, protocol.ErrUnknownTopic) {
		rf := b.offsetsReplicationFactor()
		if alive := len(b.Cluster("").Brokers); alive < int(rf) {
			return protocol.BrokerInfo{}, fmt.Errorf("%w: %s needs %d live brokers (offsets.topic.replication.factor), %d alive",
				protocol.ErrCoordinatorNotAvailable, topic, rf, alive)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = b.CreateTopic(cctx, protocol.TopicSpec{Name: topic, Partitions: partitions,
			ReplicationFactor: rf, Configs: map[string]string{
				"cleanup.policy": "compact", "segment.bytes": strconv.FormatInt(b.cfg.OffsetsSegmentBytes, 10)}}, false)
		cancel()
		if err != nil && !errors.Is(err, protocol.ErrTopicExists) {
			return protocol.BrokerInfo{}, fmt.Errorf("%w: creating %s: %w", protocol.ErrCoordinatorNotAvailable, topic, err)
		}
		t, err = b.Topic(topic)
	}
	if err != nil {
		return protocol.BrokerInfo{}, fmt.Errorf("%w: %w", protocol.ErrCoordinatorNotAvailable, err)
	}
	p := group.PartitionFor(name, len(t.Partitions))
	leader := t.Partitions[p].Leader
	ci := b.Cluster(listener)
	for _, br := range ci.Brokers {
		if br.NodeID == leader {
			return br, nil
		}
	}
	if ci.NoListener[leader] {
		return protocol.BrokerInfo{}, fmt.Errorf("%w: the coordinator, broker %d, has no listener %s", protocol.ErrCoordinatorNotAvailable, leader, listener)
	}
	return protocol.BrokerInfo{}, fmt.Errorf("%w: partition %d of %s has no live leader", protocol.ErrCoordinatorNotAvailable, p, topic)
}

// TxnMarkerWritten tells the group coordinator that a transaction marker
// is written and replicated in a __consumer_offsets partition it leads:
// the offsets the transaction committed there count, or are dropped.
func (b *Broker) TxnMarkerWritten(topic string, partition int32, producerID int64, commit bool) {
	if topic == group.OffsetsTopic {
		b.groups.TxnMarker(partition, producerID, commit)
	}
}

// Group passes a group request to the coordinator.
func (b *Broker) Group(ctx context.Context, clientID, clientHost string, req kmsg.Request) kmsg.Response {
	return b.groups.Handle(ctx, b.offsetsPartitions(), clientID, clientHost, req)
}

// electOffsets tells the coordinator which offsets partitions this broker
// leads, after a role change.
func (b *Broker) electOffsets(id int32, p *partition.Partition, leads bool) {
	if leads {
		b.groups.Elected(id, internalLog{p})
	} else {
		b.groups.Resigned(id)
	}
}
