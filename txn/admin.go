package txn

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// stateNames are the transaction states as DescribeTransactions and
// ListTransactions name them (Kafka's TransactionState names).
var stateNames = map[kmsg.TransactionState]string{
	kmsg.TransactionStateEmpty: "Empty", kmsg.TransactionStateOngoing: "Ongoing",
	kmsg.TransactionStatePrepareCommit: "PrepareCommit", kmsg.TransactionStatePrepareAbort: "PrepareAbort",
	kmsg.TransactionStateCompleteCommit: "CompleteCommit", kmsg.TransactionStateCompleteAbort: "CompleteAbort",
	kmsg.TransactionStateDead: "Dead", kmsg.TransactionStatePrepareEpochFence: "PrepareEpochFence",
}

// Describe answers DescribeTransactions for the ids this broker
// coordinates: NOT_COORDINATOR for others, TRANSACTIONAL_ID_NOT_FOUND for
// unknown ones.
func (c *Coordinator) Describe(partitions int, ids []string) []kmsg.DescribeTransactionsResponseTransactionState {
	out := make([]kmsg.DescribeTransactionsResponseTransactionState, 0, len(ids))
	for _, id := range ids {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.ProducerEpoch = id, -1, -1
		s, code := c.shardFor(id, partitions)
		var m *Metadata
		if code == 0 {
			c.mu.Lock()
			if e := s.txns[id]; e != nil && e.meta != nil {
				m = e.meta.clone()
			}
			c.mu.Unlock()
			if m == nil {
				code = kerr.TransactionalIDNotFound.Code
			}
		}
		st.ErrorCode = code
		if m != nil {
			st.State, st.TimeoutMillis, st.StartTimestamp = stateNames[m.State], m.TimeoutMs, m.StartMs
			st.ProducerID, st.ProducerEpoch = m.ProducerID, m.ProducerEpoch
			if m.State != kmsg.TransactionStateOngoing && !preparing(m) {
				st.StartTimestamp = -1
			}
			m.eachTopic(func(topic string, parts []int32) {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic, t.Partitions = topic, parts
				st.Topics = append(st.Topics, t)
			})
		}
		out = append(out, st)
	}
	return out
}

// List answers ListTransactions with the transactions this broker
// coordinates that pass the filters (states by name, producer ids, and
// from v1 running longer than minDuration when it is positive); unknown
// state names are returned, as Kafka does.
func (c *Coordinator) List(states []string, producerIDs []int64, minDuration time.Duration) (list []kmsg.ListTransactionsResponseTransactionState, unknownStates []string) {
	known := map[string]bool{}
	for _, name := range stateNames {
		known[name] = true
	}
	for _, s := range states {
		if !known[s] {
			unknownStates = append(unknownStates, s)
		}
	}
	now := time.Now().UnixMilli()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.shards {
		if !s.loaded() {
			continue
		}
		for id, e := range s.txns {
			m := e.meta
			switch {
			case m == nil:
			case len(states) > 0 && !slices.Contains(states, stateNames[m.State]):
			case len(producerIDs) > 0 && !slices.Contains(producerIDs, m.ProducerID):
			case minDuration > 0 && (m.State != kmsg.TransactionStateOngoing || now-m.StartMs < minDuration.Milliseconds()):
			default:
				lt := kmsg.NewListTransactionsResponseTransactionState()
				lt.TransactionalID, lt.ProducerID, lt.TransactionState = id, m.ProducerID, stateNames[m.State]
				list = append(list, lt)
			}
		}
	}
	slices.SortFunc(list, func(a, b kmsg.ListTransactionsResponseTransactionState) int {
		if a.TransactionalID < b.TransactionalID {
			return -1
		}
		if a.TransactionalID > b.TransactionalID {
			return 1
		}
		return 0
	})
	return list, unknownStates
}
