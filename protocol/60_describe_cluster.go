package protocol

// DescribeCluster v0-v2 (KIP-700): the cluster id, the controller and the
// live brokers on the listener asked on, as Metadata gives them, and on
// request the operations the principal may perform on the cluster. Needs
// DESCRIBE on the cluster. Only broker endpoints are described (KIP-919's
// controller endpoints get UNSUPPORTED_ENDPOINT_TYPE: every mlog node is
// both).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(60, 0, 2, handleDescribeCluster) }

// endpointTypeBrokers is KIP-919's endpoint type of brokers.
const endpointTypeBrokers = 1

// clusterOperations are the operations Kafka reports on the cluster.
var clusterOperations = []acl.Operation{acl.OpCreate, acl.OpAlter, acl.OpDescribe, acl.OpClusterAction,
	acl.OpDescribeConfigs, acl.OpAlterConfigs, acl.OpIdempotentWrite}

func handleDescribeCluster(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = endpointTypeBrokers
	switch {
	case !c.allowedCluster(acl.OpDescribe):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}, nil
	case req.Version >= 1 && req.EndpointType != endpointTypeBrokers:
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		msg := "only broker endpoints (type 1) are described: every mlog node is a broker and a controller candidate"
		resp.ErrorMessage = &msg
		return reply{resp: resp}, nil
	}
	cl := c.s.backend.Cluster(c.s.cfg.Listener)
	resp.ClusterID, resp.ControllerID = cl.ClusterID, cl.ControllerID
	for _, b := range cl.Brokers {
		resp.Brokers = append(resp.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
	}
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = 0
		for _, op := range clusterOperations {
			if c.allowedCluster(op) {
				resp.ClusterAuthorizedOperations |= 1 << op
			}
		}
	}
	return reply{resp: resp}, nil
}
