package protocol

// CreateAcls v0-v3: new bindings, committed by the controller (forwarded
// there). Needs ALTER on the cluster. Each creation is answered on its own:
// an invalid one gets INVALID_REQUEST and the others are still created.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(30, 0, 3, handleCreateACLs) }

func handleCreateACLs(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.CreateACLsRequest)
	allowed := c.allowedCluster(acl.OpAlter)
	return reply{later: func(ctx context.Context) kmsg.Response {
		if !allowed {
			return createACLsFailed(req, kerr.ClusterAuthorizationFailed.Code, "CreateAcls needs ALTER on the cluster")
		}
		resp, err := c.s.backend.CreateACLs(ctx, req)
		if err != nil {
			return createACLsFailed(req, errorCode(err), err.Error())
		}
		return resp
	}}, nil
}

func createACLsFailed(req *kmsg.CreateACLsRequest, code int16, msg string) *kmsg.CreateACLsResponse {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	for range req.Creations {
		r := kmsg.NewCreateACLsResponseResult()
		r.ErrorCode, r.ErrorMessage = code, &msg
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// ApplyCreateACLs answers a CreateAcls request on the controller: every
// valid creation is committed at once by commit; invalid ones are refused
// one by one.
func ApplyCreateACLs(req *kmsg.CreateACLsRequest, commit func([]acl.Binding) error) *kmsg.CreateACLsResponse {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	var valid []acl.Binding
	for _, cr := range req.Creations {
		b := acl.Binding{ResourceType: acl.ResourceType(cr.ResourceType), ResourceName: cr.ResourceName,
			PatternType: acl.PatternType(cr.ResourcePatternType), Principal: cr.Principal, Host: cr.Host,
			Operation: acl.Operation(cr.Operation), Permission: acl.Permission(cr.PermissionType)}
		r := kmsg.NewCreateACLsResponseResult()
		if err := b.Validate(); err != nil {
			r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, errorMessage(err)
		} else {
			valid = append(valid, b)
		}
		resp.Results = append(resp.Results, r)
	}
	if len(valid) == 0 {
		return resp
	}
	if err := commit(valid); err != nil {
		for i := range resp.Results {
			if resp.Results[i].ErrorCode == 0 {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errorCode(err), errorMessage(err)
			}
		}
	}
	return resp
}
