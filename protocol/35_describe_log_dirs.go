package protocol

// DescribeLogDirs v0-v4: the one log directory (--data-dir) and the size
// of every partition replica this broker holds in it, all of them or the
// ones asked for; v4 adds the volume's total and usable bytes. OffsetLag
// is how far a replica's log end is behind the high watermark it knows.
// Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(35, 0, 4, handleDescribeLogDirs) }

func handleDescribeLogDirs(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	if !c.allowedCluster(acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	ld := c.s.backend.LogDir()
	want := map[string]map[int32]bool{} // nil Topics: every partition
	for _, t := range req.Topics {
		if want[t.Topic] == nil {
			want[t.Topic] = map[int32]bool{}
		}
		for _, p := range t.Partitions {
			want[t.Topic][p] = true
		}
	}
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir, dir.TotalBytes, dir.UsableBytes = ld.Dir, ld.TotalBytes, ld.UsableBytes
	topics := map[string]int{} // index in dir.Topics
	for _, p := range ld.Partitions {
		if req.Topics != nil && !want[p.Topic][p.Partition] {
			continue
		}
		i, ok := topics[p.Topic]
		if !ok {
			i = len(dir.Topics)
			topics[p.Topic] = i
			dt := kmsg.NewDescribeLogDirsResponseDirTopic()
			dt.Topic = p.Topic
			dir.Topics = append(dir.Topics, dt)
		}
		dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		dp.Partition, dp.Size, dp.OffsetLag = p.Partition, p.Size, p.OffsetLag
		dir.Topics[i].Partitions = append(dir.Topics[i].Partitions, dp)
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return reply{resp: resp}, nil
}
