package protocol

// AllocateProducerIDs v0: a block of producer ids from the controller, for
// a broker answering InitProducerID. Brokers only: needs CLUSTER_ACTION.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(67, 0, 0, handleAllocateProducerIDs) }

func handleAllocateProducerIDs(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.AllocateProducerIDsRequest)
	resp := req.ResponseKind().(*kmsg.AllocateProducerIDsResponse)
	if !c.allowedCluster(acl.OpClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		first, n, err := c.s.backend.AllocateProducerIDs(ctx, req.BrokerID)
		resp.ErrorCode = errorCode(err)
		resp.ProducerIDStart, resp.ProducerIDLen = first, n
		return resp
	}}, nil
}
