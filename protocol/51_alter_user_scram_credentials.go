package protocol

// AlterUserScramCredentials v0 (KIP-554): upsert and delete SCRAM
// credentials, user by user, on the controller (forwarded there). The
// request carries salted passwords; the cluster keeps only the salt,
// iteration count, stored key and server key (RFC 5802). Needs ALTER on
// the cluster (CLUSTER_AUTHORIZATION_FAILED for every user named).

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(51, 0, 0, handleAlterUserScram) }

func handleAlterUserScram(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.AlterUserSCRAMCredentialsRequest)
	allowed := c.allowedCredentials(acl.OpAlter)
	return reply{later: func(ctx context.Context) kmsg.Response {
		var resp *kmsg.AlterUserSCRAMCredentialsResponse
		err := fmt.Errorf("%w: changing credentials needs ALTER on the cluster", ErrClusterAuthorization)
		if allowed {
			resp, err = c.s.backend.AlterScram(ctx, req)
		}
		if err == nil {
			return resp
		}
		// Nothing was applied: every user named gets the error.
		resp = req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
		seen := map[string]bool{}
		add := func(user string) {
			if seen[user] {
				return
			}
			seen[user] = true
			r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			r.User, r.ErrorCode, r.ErrorMessage = user, errorCode(err), errorMessage(err)
			resp.Results = append(resp.Results, r)
		}
		for _, d := range req.Deletions {
			add(d.Name)
		}
		for _, u := range req.Upsertions {
			add(u.Name)
		}
		return resp
	}}, nil
}
