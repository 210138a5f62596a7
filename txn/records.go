package txn

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/storage/batch"
)

// StateTopic is the internal topic holding transaction metadata.
const StateTopic = "__transaction_state"

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Metadata is one transactional id's state.
type Metadata struct {
	ID            string
	ProducerID    int64
	ProducerEpoch int16
	TimeoutMs     int32
	State         kmsg.TransactionState
	Partitions    []TopicPartition // sorted, without repeats
	LastUpdateMs  int64
	StartMs       int64
}

func (m *Metadata) clone() *Metadata {
	c := *m
	c.Partitions = slices.Clone(m.Partitions)
	return &c
}

func (m *Metadata) has(tp TopicPartition) bool {
	_, ok := slices.BinarySearchFunc(m.Partitions, tp, compareTP)
	return ok
}

func (m *Metadata) add(tp TopicPartition) {
	if i, ok := slices.BinarySearchFunc(m.Partitions, tp, compareTP); !ok {
		m.Partitions = slices.Insert(m.Partitions, i, tp)
	}
}

func compareTP(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition) - int(b.Partition)
}

// eachTopic calls fn with each topic of the transaction and its
// partitions, in order.
func (m *Metadata) eachTopic(fn func(topic string, partitions []int32)) {
	for i := 0; i < len(m.Partitions); {
		j := i
		var parts []int32
		for ; j < len(m.Partitions) && m.Partitions[j].Topic == m.Partitions[i].Topic; j++ {
			parts = append(parts, m.Partitions[j].Partition)
		}
		fn(m.Partitions[i].Topic, parts)
		i = j
	}
}

// record encodes m as Kafka's TxnMetadataKey/Value (value version 0).
func (m *Metadata) record(nowMs int64) batch.Record {
	k := kmsg.NewTxnMetadataKey()
	k.TransactionalID = m.ID
	v := kmsg.NewTxnMetadataValue()
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis, v.State = m.ProducerID, m.ProducerEpoch, m.TimeoutMs, m.State
	v.LastUpdateTimestamp, v.StartTimestamp = m.LastUpdateMs, m.StartMs
	m.eachTopic(func(topic string, parts []int32) {
		t := kmsg.NewTxnMetadataValueTopic()
		t.Topic, t.Partitions = topic, parts
		v.Topics = append(v.Topics, t)
	})
	return batch.Record{Timestamp: nowMs, Key: k.AppendTo(nil), Value: v.AppendTo(nil)}
}

// decodeRecord reads a __transaction_state record: the metadata, or nil
// for a tombstone of id.
func decodeRecord(r batch.Record) (id string, m *Metadata, err error) {
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(r.Key); err != nil {
		return "", nil, fmt.Errorf("txn: key at %d: %w", r.Offset, err)
	}
	if r.Value == nil {
		return k.TransactionalID, nil, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(r.Value); err != nil {
		return "", nil, fmt.Errorf("txn: value of %q at %d: %w", k.TransactionalID, r.Offset, err)
	}
	m = &Metadata{ID: k.TransactionalID, ProducerID: v.ProducerID, ProducerEpoch: v.ProducerEpoch, TimeoutMs: v.TimeoutMillis,
		State: v.State, LastUpdateMs: v.LastUpdateTimestamp, StartMs: v.StartTimestamp}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			m.add(TopicPartition{t.Topic, p})
		}
	}
	return m.ID, m, nil
}
