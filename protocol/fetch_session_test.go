package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func sessionRequest(id, epoch int32, partitions ...int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.SessionID, req.SessionEpoch = 12, -1, id, epoch
	t := kmsg.FetchRequestTopic{Topic: "t"}
	for _, p := range partitions {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		t.Partitions = append(t.Partitions, rp)
	}
	if len(partitions) > 0 {
		req.Topics = []kmsg.FetchRequestTopic{t}
	}
	return req
}

// All sessions of a server together hold at most
// maxServerSessionPartitions: past it a full fetch gets no session and an
// incremental one that adds partitions loses its session; closing gives
// the partitions back.
func TestSessionPartitionBudget(t *testing.T) {
	s := &Server{}
	c := &conn{s: s}
	sf := c.resolveSession(sessionRequest(0, 0, 1, 2, 3))
	if sf.session == nil || s.sessionPartitions.Load() != 3 {
		t.Fatalf("opening 3 partitions: session %v, budget used %d", sf.session, s.sessionPartitions.Load())
	}
	id := sf.session.id

	s.sessionPartitions.Add(maxServerSessionPartitions - 3) // others hold the rest
	if other := (&conn{s: s}).resolveSession(sessionRequest(0, 0, 9)); other.session != nil {
		t.Fatal("a session opened past the server's budget")
	}
	if got := c.resolveSession(sessionRequest(id, 1, 4)); got.errorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("adding a partition past the budget: error %d, want FETCH_SESSION_ID_NOT_FOUND", got.errorCode)
	}
	if used := s.sessionPartitions.Load(); used != maxServerSessionPartitions-3 {
		t.Fatalf("budget used %d after the session ended, want its 3 partitions given back", used)
	}

	s.sessionPartitions.Add(-(maxServerSessionPartitions - 3))
	sf = c.resolveSession(sessionRequest(0, 0, 1, 2))
	if sf.session == nil {
		t.Fatal("no session with the budget free")
	}
	fr := sessionRequest(sf.session.id, 1)
	fr.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "t", Partitions: []int32{2, 7}}}
	if got := c.resolveSession(fr); got.errorCode != 0 || s.sessionPartitions.Load() != 1 {
		t.Fatalf("forgetting 2 (and 7, never held): error %d, budget used %d, want 1", got.errorCode, s.sessionPartitions.Load())
	}
	c.sessions.closeAll()
	if used := s.sessionPartitions.Load(); used != 0 || s.fetchSessions.Load() != 0 {
		t.Fatalf("after the connection closed: %d partitions, %d sessions", used, s.fetchSessions.Load())
	}
}
