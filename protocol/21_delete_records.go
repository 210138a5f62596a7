package protocol

// DeleteRecords v0-v2: raise a partition's log start offset on its leader
// (-1: to the high watermark); followers follow on their next fetch.
// Needs DELETE on the topic. The low watermark answered is the leader's
// new log start offset. Offsets past the high watermark get
// OFFSET_OUT_OF_RANGE, a replica that does not lead NOT_LEADER.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(21, 0, 2, handleDeleteRecords) }

func handleDeleteRecords(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		allowed := c.allowedTopic(acl.OpDelete, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			if !allowed {
				sp.ErrorCode = errorCode(ErrTopicAuthorization)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			p, err := c.s.backend.Partition(rt.Topic, rp.Partition)
			if err == nil {
				sp.LowWatermark, err = p.DeleteRecords(rp.Offset)
			}
			sp.ErrorCode = errorCode(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}, nil
}
