package replication

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func want(offsets map[Key]int64) map[Key]kmsg.FetchRequestTopicPartition {
	out := map[Key]kmsg.FetchRequestTopicPartition{}
	for k, o := range offsets {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.CurrentLeaderEpoch, rp.PartitionMaxBytes = k.Partition, o, 1, 1<<20
		out[k] = rp
	}
	return out
}

func named(req *kmsg.FetchRequest) map[Key]int64 {
	out := map[Key]int64{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			out[Key{t.Topic, p.Partition}] = p.FetchOffset
		}
	}
	return out
}

// A follower's session: the first request is full, later ones name only
// the partitions whose position moved and forget the ones no longer
// fetched; a lost reply or a rejected session makes the next one full.
func TestSessionRequests(t *testing.T) {
	a, b, c := Key{"t", 0}, Key{"t", 1}, Key{"u", 0}
	var s session
	w := want(map[Key]int64{a: 0, b: 5, c: 7})
	req := s.request(w)
	if req.SessionID != 0 || req.SessionEpoch != 0 || len(named(req)) != 3 {
		t.Fatalf("first request: session %d epoch %d, %v", req.SessionID, req.SessionEpoch, named(req))
	}
	s.answered(req, 42, w)

	w = want(map[Key]int64{a: 3, b: 5, c: 7}) // a took records
	req = s.request(w)
	if got := named(req); req.SessionID != 42 || req.SessionEpoch != 1 || len(got) != 1 || got[a] != 3 || len(req.ForgottenTopics) != 0 {
		t.Fatalf("incremental request: session %d epoch %d, %v, forgotten %v", req.SessionID, req.SessionEpoch, got, req.ForgottenTopics)
	}
	s.answered(req, 42, w)

	w = want(map[Key]int64{a: 3, b: 5}) // c held back
	req = s.request(w)
	if len(named(req)) != 0 || req.SessionEpoch != 2 || len(req.ForgottenTopics) != 1 || req.ForgottenTopics[0].Topic != "u" {
		t.Fatalf("forgetting request: epoch %d, %v, forgotten %v", req.SessionEpoch, named(req), req.ForgottenTopics)
	}
	s.answered(req, 42, w)

	w = want(map[Key]int64{a: 3, b: 5, c: 7}) // c back
	req = s.request(w)
	if got := named(req); len(got) != 1 || got[c] != 7 {
		t.Fatalf("c back: %v", got)
	}
	s.failed() // no reply: the leader's view is unknown
	req = s.request(w)
	if req.SessionID != 42 || req.SessionEpoch != 0 || len(named(req)) != 3 {
		t.Fatalf("after a lost reply: session %d epoch %d, %v; want a full request closing 42", req.SessionID, req.SessionEpoch, named(req))
	}
	s.answered(req, 43, w)
	if !s.rejected(kerr.FetchSessionIDNotFound) {
		t.Fatal("FETCH_SESSION_ID_NOT_FOUND not taken as a lost session")
	}
	req = s.request(w)
	if req.SessionID != 0 || req.SessionEpoch != 0 || len(named(req)) != 3 {
		t.Fatalf("after a rejection: session %d epoch %d, %v", req.SessionID, req.SessionEpoch, named(req))
	}
	s.answered(req, 0, w) // a leader keeping no session: stay full
	if req = s.request(w); req.SessionEpoch != 0 || len(named(req)) != 3 {
		t.Fatalf("sessionless: epoch %d, %v", req.SessionEpoch, named(req))
	}
	if s.rejected(kerr.NotLeaderForPartition) {
		t.Fatal("a partition error taken as a lost session")
	}
}
