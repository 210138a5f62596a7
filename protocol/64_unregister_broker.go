package protocol

// UnregisterBroker v0 (KIP-500): decommission a broker that holds no
// replica (mlog broker decommission moves them off first): it leaves the
// Raft configuration and no topic or reassignment uses it again. Needs
// ALTER on the cluster. A broker still holding replicas gets
// INVALID_REQUEST, an unknown one BROKER_ID_NOT_REGISTERED.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(64, 0, 0, handleUnregisterBroker) }

// unregisterTimeout bounds an unregistration through the controller.
const unregisterTimeout = 15 * time.Second

func handleUnregisterBroker(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.UnregisterBrokerRequest)
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	if !c.allowedCluster(acl.OpAlter) {
		resp.ErrorCode = errorCode(ErrClusterAuthorization)
		return reply{resp: resp}, nil
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		ctx, cancel := context.WithTimeout(ctx, unregisterTimeout)
		defer cancel()
		err := c.s.backend.UnregisterBroker(ctx, req.BrokerID)
		resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
		return resp
	}}, nil
}
