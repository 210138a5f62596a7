package protocol

// DescribeUserScramCredentials v0 (KIP-554): which SCRAM mechanisms each
// user has credentials for, and their iteration counts (never a salt or
// key). No users named: every user. A user named twice gets
// DUPLICATE_RESOURCE, one without credentials RESOURCE_NOT_FOUND. Needs
// DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED).

import (
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(50, 0, 0, handleDescribeUserScram) }

func handleDescribeUserScram(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !c.allowedCredentials(acl.OpDescribe) {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr("describing credentials needs DESCRIBE on the cluster")
		return reply{resp: resp}, nil
	}
	users := c.s.backend.ScramUsers()
	var names []string
	if len(req.Users) == 0 {
		names = slices.Sorted(maps.Keys(users))
	}
	count := map[string]int{}
	for _, u := range req.Users {
		if count[u.Name]++; count[u.Name] == 1 {
			names = append(names, u.Name)
		}
	}
	for _, name := range names {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = name
		creds, ok := users[name]
		switch {
		case count[name] > 1:
			r.ErrorCode, r.ErrorMessage = kerr.DuplicateResource.Code, kmsg.StringPtr("user named more than once")
		case !ok:
			r.ErrorCode, r.ErrorMessage = kerr.ResourceNotFound.Code, kmsg.StringPtr("no SCRAM credentials for this user")
		default:
			for _, mech := range slices.Sorted(maps.Keys(creds)) {
				ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
				ci.Mechanism, ci.Iterations = mech, creds[mech]
				r.CredentialInfos = append(r.CredentialInfos, ci)
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return reply{resp: resp}, nil
}
