package protocol

// ControlledShutdown v1-v3 (v0 uses a request header without a client id,
// which no current broker sends): a broker about to stop asks the
// controller to move its partition leaderships away first. Brokers only:
// needs CLUSTER_ACTION.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(7, 1, 3, handleControlledShutdown) }

func handleControlledShutdown(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ControlledShutdownRequest)
	resp := req.ResponseKind().(*kmsg.ControlledShutdownResponse)
	if !c.allowedCluster(acl.OpClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		resp.ErrorCode = errorCode(c.s.backend.ControlledShutdown(ctx, req.BrokerID))
		return resp
	}}, nil
}
