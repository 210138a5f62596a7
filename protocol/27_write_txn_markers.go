package protocol

// WriteTxnMarkers v0-v1: the transaction coordinator's commit or abort
// markers for the partitions a transaction wrote to, each written by the
// partition's leader (partition.WriteMarker) and answered once the ISR
// holds it, as acks=all. Brokers only: needs CLUSTER_ACTION.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/partition"
)

func init() { register(27, 0, 1, handleWriteTxnMarkers) }

func handleWriteTxnMarkers(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	allowed := c.allowedCluster(acl.OpClusterAction)
	type written struct {
		sp     *kmsg.WriteTxnMarkersResponseMarkerTopicPartition
		p      *partition.Partition
		app    partition.Appended
		pid    int64
		commit bool
	}
	var pending []written
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, id := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = id
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	// Written on the reader, in request order, like produces.
	for i, m := range req.Markers {
		for j, t := range m.Topics {
			for k, id := range t.Partitions {
				sp := &resp.Markers[i].Topics[j].Partitions[k]
				if !allowed {
					sp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
					continue
				}
				p, err := c.s.backend.Partition(t.Topic, id)
				var app partition.Appended
				if err == nil {
					app, err = p.WriteMarker(m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch)
				}
				if err != nil {
					sp.ErrorCode = errorCode(err)
					continue
				}
				pending = append(pending, written{sp, p, app, m.ProducerID, m.Committed})
			}
		}
	}
	if len(pending) == 0 {
		return reply{resp: resp}, nil
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		for _, w := range pending {
			if _, err := w.p.WaitAck(ctx, w.app, -1); err != nil {
				w.sp.ErrorCode = errorCode(err)
				continue
			}
			c.s.backend.TxnMarkerWritten(w.p.Topic(), w.p.ID(), w.pid, w.commit)
		}
		return resp
	}}, nil
}
