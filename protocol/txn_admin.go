package protocol

// The transaction admin APIs: DescribeTransactions (65) v0 and
// ListTransactions (66) v0-v1 from the coordinators (each broker answers
// for the transactional ids it coordinates; clients ask every broker), and
// DescribeProducers (61) v0 from partition leaders. DESCRIBE on a
// transactional id is needed to see it (DescribeTransactions refuses with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, ListTransactions leaves it out);
// DescribeProducers needs READ on the topic.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/partition"
)

func init() {
	register(61, 0, 0, handleDescribeProducers)
	register(65, 0, 0, handleDescribeTransactions)
	register(66, 0, 1, handleListTransactions)
}

func handleDescribeTransactions(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	var allowed []string
	for _, id := range req.TransactionalIDs {
		if c.allowed(acl.OpDescribe, acl.ResourceTransactionalID, id) {
			allowed = append(allowed, id)
		}
	}
	described := map[string]kmsg.DescribeTransactionsResponseTransactionState{}
	for _, st := range c.s.backend.DescribeTransactions(allowed) {
		described[st.TransactionalID] = st
	}
	for _, id := range req.TransactionalIDs {
		st, ok := described[id]
		if !ok {
			st = kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID, st.ProducerID, st.ProducerEpoch = id, -1, -1
			st.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return reply{resp: resp}, nil
}

func handleListTransactions(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var minDuration time.Duration
	if req.Version >= 1 && req.DurationFilterMillis > 0 {
		minDuration = time.Duration(req.DurationFilterMillis) * time.Millisecond
	}
	list, unknown := c.s.backend.ListTransactions(req.StateFilters, req.ProducerIDFilters, minDuration)
	resp.UnknownStateFilters = unknown
	for _, lt := range list {
		if c.allowed(acl.OpDescribe, acl.ResourceTransactionalID, lt.TransactionalID) {
			resp.TransactionStates = append(resp.TransactionStates, lt)
		}
	}
	return reply{resp: resp}, nil
}

func handleDescribeProducers(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewDescribeProducersResponseTopic()
		t.Topic = rt.Topic
		readable := c.allowedTopic(acl.OpRead, rt.Topic)
		for _, id := range rt.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = id
			err := ErrTopicAuthorization
			if readable {
				var p *partition.Partition
				if p, err = c.s.backend.Partition(rt.Topic, id); err == nil {
					err = p.CheckLeader(-1)
					for _, ap := range p.ActiveProducers() {
						a := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
						a.ProducerID, a.ProducerEpoch, a.LastSequence, a.LastTimestamp = ap.ProducerID, int32(ap.ProducerEpoch), ap.LastSequence, ap.LastTimestamp
						a.CoordinatorEpoch, a.CurrentTxnStartOffset = -1, ap.CurrentTxnStartOffset
						rp.ActiveProducers = append(rp.ActiveProducers, a)
					}
				}
			}
			if err != nil {
				rp.ErrorCode, rp.ErrorMessage, rp.ActiveProducers = errorCode(err), errorMessage(err), nil
			}
			t.Partitions = append(t.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return reply{resp: resp}, nil
}
