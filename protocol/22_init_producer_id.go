package protocol

// InitProducerID v0-v4 for idempotent and transactional producers. With a
// transactional id the transaction coordinator answers (package txn:
// epoch bump, fencing, the abort of what an earlier instance left open);
// it needs WRITE on the transactional id. v3+ lets a producer that already
// has an id ask for the next epoch (KIP-360), which it does after some
// errors to reset its sequences. An idempotent producer needs
// IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(22, 0, 4, handleInitProducerID) }

func handleInitProducerID(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	switch {
	case req.TransactionalID != nil && !c.allowed(acl.OpWrite, acl.ResourceTransactionalID, *req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case req.TransactionalID != nil:
		return txnHandler(c, req)
	case !c.allowedCluster(acl.OpIdempotentWrite) && !c.allowedAny(acl.OpWrite, acl.ResourceTopic):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	case req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16:
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
	default:
		return reply{later: func(ctx context.Context) kmsg.Response {
			id, epoch, err := c.s.backend.NewProducerID(ctx)
			if err != nil {
				resp.ErrorCode = errorCode(err)
			} else {
				resp.ProducerID, resp.ProducerEpoch = id, epoch
			}
			return resp
		}}, nil
	}
	return reply{resp: resp}, nil
}
