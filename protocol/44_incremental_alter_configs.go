package protocol

// IncrementalAlterConfigs v0-v1 (KIP-339) and AlterConfigs v0-v2: change a
// topic's configs or the dynamic broker configs (resource name "" for the
// cluster-wide default, or a broker id), applied without a restart.
// IncrementalAlterConfigs sets, deletes, appends to or subtracts from
// single configs; AlterConfigs replaces a resource's whole set. Needs
// ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or the cluster
// (CLUSTER_AUTHORIZATION_FAILED). ValidateOnly checks without changing.

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() {
	register(44, 0, 1, handleIncrementalAlterConfigs)
	register(33, 0, 2, handleAlterConfigs)
}

// alterConfigsTimeout bounds one resource's change through the controller.
const alterConfigsTimeout = 15 * time.Second

// alterConfig authorizes and applies one resource's change.
func (c *conn) alterConfig(ctx context.Context, a ConfigAlteration) error {
	switch a.Type {
	case kmsg.ConfigResourceTypeTopic:
		if !c.allowedTopic(acl.OpAlterConfigs, a.Name) {
			return ErrTopicAuthorization
		}
	case kmsg.ConfigResourceTypeBroker:
		if !c.allowedCluster(acl.OpAlterConfigs) {
			return ErrClusterAuthorization
		}
	default:
		return fmt.Errorf("%w: config resource type %d", ErrInvalidRequest, a.Type)
	}
	ctx, cancel := context.WithTimeout(ctx, alterConfigsTimeout)
	defer cancel()
	return c.s.backend.AlterConfigs(ctx, a)
}

// alterAll applies each alteration in turn, one error each.
func (c *conn) alterAll(ctx context.Context, alts []ConfigAlteration) []error {
	errs := make([]error, len(alts))
	for i, a := range alts {
		errs[i] = c.alterConfig(ctx, a)
	}
	return errs
}

func handleIncrementalAlterConfigs(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	var alts []ConfigAlteration
	for _, rr := range req.Resources {
		a := ConfigAlteration{Type: rr.ResourceType, Name: rr.ResourceName, Incremental: true, ValidateOnly: req.ValidateOnly}
		for _, cf := range rr.Configs {
			a.Ops = append(a.Ops, ConfigOp{Name: cf.Name, Op: cf.Op, Value: cf.Value})
		}
		alts = append(alts, a)
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		for i, err := range c.alterAll(ctx, alts) {
			sr := kmsg.NewIncrementalAlterConfigsResponseResource()
			sr.ResourceType, sr.ResourceName = alts[i].Type, alts[i].Name
			sr.ErrorCode, sr.ErrorMessage = errorCode(err), errorMessage(err)
			resp.Resources = append(resp.Resources, sr)
		}
		return resp
	}}, nil
}

func handleAlterConfigs(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	var alts []ConfigAlteration
	for _, rr := range req.Resources {
		a := ConfigAlteration{Type: rr.ResourceType, Name: rr.ResourceName, ValidateOnly: req.ValidateOnly}
		for _, cf := range rr.Configs {
			a.Ops = append(a.Ops, ConfigOp{Name: cf.Name, Op: kmsg.IncrementalAlterConfigOpSet, Value: cf.Value})
		}
		alts = append(alts, a)
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		for i, err := range c.alterAll(ctx, alts) {
			sr := kmsg.NewAlterConfigsResponseResource()
			sr.ResourceType, sr.ResourceName = alts[i].Type, alts[i].Name
			sr.ErrorCode, sr.ErrorMessage = errorCode(err), errorMessage(err)
			resp.Resources = append(resp.Resources, sr)
		}
		return resp
	}}, nil
}
