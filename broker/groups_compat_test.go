package broker_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/internal/testutil"
)

// The group API versions older clients send (kafka-go, kafka-python):
// FindCoordinator v0, JoinGroup v0-v2, SyncGroup v0, Heartbeat v0,
// OffsetCommit v2, OffsetFetch v1, LeaveGroup v0.
func TestOldGroupVersions(t *testing.T) {
	_, b := startOne(t)
	c := dialRaw(t, b)
	produceRaw(c, "old-g", idempotentBatch(-1, -1, -1, "x"))

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKey = 0, "old"
	var fcr *kmsg.FindCoordinatorResponse
	testutil.Eventually(t, "a coordinator", func() bool { // the offsets topic is created on first need
		fcr = c.send(fc).(*kmsg.FindCoordinatorResponse)
		return fcr.ErrorCode == 0
	})
	if fcr.ErrorCode != 0 || fcr.NodeID != 1 || fcr.Port == 0 {
		t.Fatalf("FindCoordinator v0: %+v", fcr)
	}
	var lastGen int32
	for v := int16(0); v <= 2; v++ {
		jg := kmsg.NewPtrJoinGroupRequest()
		jg.Version, jg.Group, jg.SessionTimeoutMillis, jg.RebalanceTimeoutMillis, jg.ProtocolType = v, "old", 10000, 10000, "consumer"
		jg.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1}}}
		var jr *kmsg.JoinGroupResponse
		testutil.Eventually(t, "the group loaded", func() bool { // COORDINATOR_LOAD_IN_PROGRESS while loading
			jr = c.send(jg).(*kmsg.JoinGroupResponse)
			return jr.ErrorCode != kerr.CoordinatorLoadInProgress.Code && jr.ErrorCode != kerr.NotCoordinator.Code &&
				jr.ErrorCode != kerr.CoordinatorNotAvailable.Code
		})
		if jr.ErrorCode != 0 || jr.Generation <= lastGen || jr.LeaderID != jr.MemberID || len(jr.Members) != 1 || *jr.Protocol != "range" {
			t.Fatalf("JoinGroup v%d: %+v", v, jr)
		}
		lastGen = jr.Generation
		sg := kmsg.NewPtrSyncGroupRequest()
		sg.Version, sg.Group, sg.Generation, sg.MemberID = 0, "old", jr.Generation, jr.MemberID
		sg.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: jr.MemberID, MemberAssignment: []byte("assigned")}}
		if sr := c.send(sg).(*kmsg.SyncGroupResponse); sr.ErrorCode != 0 || string(sr.MemberAssignment) != "assigned" {
			t.Fatalf("SyncGroup v0: %+v", sr)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version, hb.Group, hb.Generation, hb.MemberID = 0, "old", jr.Generation, jr.MemberID
		if hr := c.send(hb).(*kmsg.HeartbeatResponse); hr.ErrorCode != 0 {
			t.Fatalf("Heartbeat v0: error %d", hr.ErrorCode)
		}
		oc := kmsg.NewPtrOffsetCommitRequest()
		oc.Version, oc.Group, oc.Generation, oc.MemberID = 2, "old", jr.Generation, jr.MemberID
		oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "old-g", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: int64(v + 1)}}}}
		if ocr := c.send(oc).(*kmsg.OffsetCommitResponse); ocr.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("OffsetCommit v2: error %d", ocr.Topics[0].Partitions[0].ErrorCode)
		}
		of := kmsg.NewPtrOffsetFetchRequest()
		of.Version, of.Group = 1, "old"
		of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "old-g", Partitions: []int32{0}}}
		if ofr := c.send(of).(*kmsg.OffsetFetchResponse); ofr.Topics[0].Partitions[0].ErrorCode != 0 || ofr.Topics[0].Partitions[0].Offset != int64(v+1) {
			t.Fatalf("OffsetFetch v1: %+v", ofr.Topics[0].Partitions[0])
		}
		lg := kmsg.NewPtrLeaveGroupRequest()
		lg.Version, lg.Group, lg.MemberID = 0, "old", jr.MemberID
		if lr := c.send(lg).(*kmsg.LeaveGroupResponse); lr.ErrorCode != 0 {
			t.Fatalf("LeaveGroup v0: error %d", lr.ErrorCode)
		}
	}
}
