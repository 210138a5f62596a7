package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/txn"
)

// newTxnCoordinator makes the transaction coordinator with the broker's
// producer ids, partitions and peers.
func (b *Broker) newTxnCoordinator() (*txn.Coordinator, error) {
	cfg := txn.DefaultConfig()
	cfg.MaxTimeout, cfg.AbortInterval = b.cfg.TransactionMaxTimeout, b.cfg.TransactionAbortInterval
	cfg.Logger = b.log
	cfg.NewProducerID = func(ctx context.Context) (int64, error) {
		id, _, err := b.NewProducerID(ctx)
		return id, err
	}
	cfg.WriteMarkers = b.writeMarkers
	cfg.PartitionExists = func(topic string, p int32) bool {
		t, err := b.Topic(topic)
		return err == nil && p >= 0 && int(p) < len(t.Partitions)
	}
	cfg.OffsetsPartitions = b.offsetsPartitions
	return txn.New(cfg)
}

// Transaction passes a transactional request to the coordinator.
func (b *Broker) Transaction(ctx context.Context, req kmsg.Request) kmsg.Response {
	return b.txns.Handle(ctx, b.txnPartitions(), req)
}

// DescribeTransactions describes the transactional ids this broker
// coordinates.
func (b *Broker) DescribeTransactions(ids []string) []kmsg.DescribeTransactionsResponseTransactionState {
	return b.txns.Describe(b.txnPartitions(), ids)
}

// ListTransactions lists the transactions this broker coordinates.
func (b *Broker) ListTransactions(states []string, producerIDs []int64, minDuration time.Duration) ([]kmsg.ListTransactionsResponseTransactionState, []string) {
	return b.txns.List(states, producerIDs, minDuration)
}

// txnPartitions is how many partitions __transaction_state has (or will
// have when created).
func (b *Broker) txnPartitions() int {
	if t, err := b.Topic(txn.StateTopic); err == nil && len(t.Partitions) > 0 {
		return len(t.Partitions)
	}
	return int(b.cfg.TransactionStatePartitions)
}

// electTxns tells the transaction coordinator which __transaction_state
// partitions this broker leads, after a role change.
func (b *Broker) electTxns(id int32, p *partition.Partition, leads bool) {
	if leads {
		b.txns.Elected(id, internalLog{p}, p.LeaderEpoch())
	} else {
		b.txns.Resigned(id)
	}
}

// writeMarkers has the leader of each of a transaction's partitions write
// its marker (WriteTxnMarkers), retrying until every leader holds it or
// ctx ends. A partition whose topic is gone needs none.
func (b *Broker) writeMarkers(ctx context.Context, m txn.Markers) error {
	left := map[txn.TopicPartition]bool{}
	for _, tp := range m.Partitions {
		left[tp] = true
	}
	for backoff := 20 * time.Millisecond; len(left) > 0; backoff = min(2*backoff, time.Second) {
		byLeader := map[int32][]txn.TopicPartition{}
		for tp := range left {
			t, err := b.Topic(tp.Topic)
			if errors.Is(err, protocol.ErrUnknownTopic) || (err == nil && int(tp.Partition) >= len(t.Partitions)) {
				delete(left, tp)
				continue
			}
			if err == nil && t.Partitions[tp.Partition].Leader >= 0 {
				leader := t.Partitions[tp.Partition].Leader
				byLeader[leader] = append(byLeader[leader], tp)
			}
		}
		for leader, tps := range byLeader {
			done, err := b.sendMarkers(ctx, leader, m, tps)
			for _, tp := range done {
				delete(left, tp)
			}
			if err != nil {
				b.log.Debug("transaction markers", "leader", leader, "err", err)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker: %d partitions without their transaction marker: %w", len(left), ctx.Err())
		case <-time.After(backoff):
		}
	}
	return nil
}

// sendMarkers asks one leader to write the markers of tps; it returns the
// partitions that hold them now.
func (b *Broker) sendMarkers(ctx context.Context, leader int32, m txn.Markers, tps []txn.TopicPartition) ([]txn.TopicPartition, error) {
	br, ok := b.cl.fsm.Broker(leader)
	if !ok || !br.Alive {
		return nil, fmt.Errorf("broker %d is not alive", leader)
	}
	cl := b.peerClient(br.KafkaAddr)
	if cl == nil {
		return nil, errors.New("broker: shutting down")
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	byTopic := map[string]int{}
	for _, tp := range tps {
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(rm.Topics)
			byTopic[tp.Topic] = i
			rm.Topics = append(rm.Topics, kmsg.WriteTxnMarkersRequestMarkerTopic{Topic: tp.Topic})
		}
		rm.Topics[i].Partitions = append(rm.Topics[i].Partitions, tp.Partition)
	}
	req.Markers = append(req.Markers, rm)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return nil, err
	}
	var done []txn.TopicPartition
	for _, mk := range resp.Markers {
		for _, t := range mk.Topics {
			for _, p := range t.Partitions {
				// A marker for a producer epoch already moved on, or from
				// a coordinator already replaced, is stale: the newer
				// decision supersedes it, nothing to wait for.
				if p.ErrorCode == 0 || p.ErrorCode == kerr.InvalidProducerEpoch.Code || p.ErrorCode == kerr.TransactionCoordinatorFenced.Code {
					done = append(done, txn.TopicPartition{Topic: t.Topic, Partition: p.Partition})
				}
			}
		}
	}
	return done, nil
}
