package protocol

// DeleteAcls v0-v3: remove the bindings each filter selects, on the
// controller (forwarded there), answering with what each filter matched.
// Needs ALTER on the cluster.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(31, 0, 3, handleDeleteACLs) }

func handleDeleteACLs(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DeleteACLsRequest)
	allowed := c.allowedCluster(acl.OpAlter)
	return reply{later: func(ctx context.Context) kmsg.Response {
		if !allowed {
			return deleteACLsFailed(req, kerr.ClusterAuthorizationFailed.Code, "DeleteAcls needs ALTER on the cluster")
		}
		resp, err := c.s.backend.DeleteACLs(ctx, req)
		if err != nil {
			return deleteACLsFailed(req, errorCode(err), err.Error())
		}
		return resp
	}}, nil
}

func deleteACLsFailed(req *kmsg.DeleteACLsRequest, code int16, msg string) *kmsg.DeleteACLsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	for range req.Filters {
		r := kmsg.NewDeleteACLsResponseResult()
		r.ErrorCode, r.ErrorMessage = code, &msg
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// ApplyDeleteACLs answers a DeleteAcls request on the controller against
// the current bindings: commit removes every binding some valid filter
// matched, at once.
func ApplyDeleteACLs(req *kmsg.DeleteACLsRequest, current []acl.Binding, commit func([]acl.Binding) error) *kmsg.DeleteACLsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	var gone []acl.Binding
	for _, rf := range req.Filters {
		f := acl.Filter{ResourceType: acl.ResourceType(rf.ResourceType), ResourceName: rf.ResourceName,
			PatternType: acl.PatternType(rf.ResourcePatternType), Principal: rf.Principal, Host: rf.Host,
			Operation: acl.Operation(rf.Operation), Permission: acl.Permission(rf.PermissionType)}
		r := kmsg.NewDeleteACLsResponseResult()
		if err := f.Validate(); err != nil {
			r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, errorMessage(err)
			resp.Results = append(resp.Results, r)
			continue
		}
		for _, b := range current {
			if !f.Matches(b) {
				continue
			}
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.ResourceName, kmsg.ACLResourcePatternType(b.PatternType)
			m.Principal, m.Host, m.Operation, m.PermissionType = b.Principal, b.Host, kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
			r.MatchingACLs = append(r.MatchingACLs, m)
			gone = append(gone, b)
		}
		resp.Results = append(resp.Results, r)
	}
	if len(gone) == 0 {
		return resp
	}
	if err := commit(gone); err != nil {
		for i := range resp.Results {
			if resp.Results[i].ErrorCode == 0 {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errorCode(err), errorMessage(err)
				resp.Results[i].MatchingACLs = nil
			}
		}
	}
	return resp
}
