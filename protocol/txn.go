package protocol

// The transaction coordinator's APIs: AddPartitionsToTxn (24) v0-v3,
// AddOffsetsToTxn (25) v0-v3, EndTxn (26) v0-v3, and InitProducerID with a
// transactional id. The coordinator (package txn) answers them on the
// reply's goroutine: each writes to __transaction_state with acks=all.
// Each needs WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); AddPartitionsToTxn also WRITE
// on each topic, AddOffsetsToTxn READ on the group.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() {
	register(24, 0, 3, handleAddPartitionsToTxn)
	register(25, 0, 3, handleAddOffsetsToTxn)
	register(26, 0, 3, handleEndTxn)
}

func txnHandler(c *conn, req kmsg.Request) (reply, error) {
	return reply{later: func(ctx context.Context) kmsg.Response { return c.s.backend.Transaction(ctx, req) }}, nil
}

func handleAddPartitionsToTxn(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.AddPartitionsToTxnRequest)
	txnAllowed := c.allowed(acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID)
	refused := !txnAllowed
	for _, t := range req.Topics {
		refused = refused || !c.allowedTopic(acl.OpWrite, t.Topic)
	}
	if !refused {
		return txnHandler(c, req)
	}
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, t := range req.Topics {
		code := kerr.OperationNotAttempted.Code
		switch {
		case !txnAllowed:
			code = kerr.TransactionalIDAuthorizationFailed.Code
		case !c.allowedTopic(acl.OpWrite, t.Topic):
			code = kerr.TopicAuthorizationFailed.Code
		}
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return reply{resp: resp}, nil
}

func handleAddOffsetsToTxn(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !c.allowed(acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case !c.allowedGroup(acl.OpRead, req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
	default:
		return txnHandler(c, req)
	}
	return reply{resp: resp}, nil
}

func handleEndTxn(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.EndTxnRequest)
	if !c.allowed(acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID) {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	return txnHandler(c, req)
}
