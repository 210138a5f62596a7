package replication

import (
	"errors"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// session is a follower's side of a fetch session with its leader
// (KIP-227): the leader keeps every followed partition and its fetch
// position, so a round's request names only the partitions whose position
// moved (those that took records, truncated or changed epoch) and the ones
// to forget, and the reply names only partitions with something new. A
// follower of many idle partitions sends and reads a few bytes a round.
//
// The first request opens the session (id 0, epoch 0, every partition);
// each answered request moves the epoch on. A request that failed leaves
// the leader's state unknown: the next one is full again and closes the
// old session (its id with epoch 0). A leader that lost the session
// (restarted, connection closed) says so and the next request opens a new
// one.
type session struct {
	id    int32
	epoch int32 // the epoch of the next incremental request; 0: send a full one
	// held is what the leader holds for each partition of the session:
	// the fields of the last request that named it.
	held map[Key]kmsg.FetchRequestTopicPartition
}

// request builds the round's Fetch for the partitions wanted now.
func (s *session) request(want map[Key]kmsg.FetchRequestTopicPartition) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.SessionID = s.id
	req.SessionEpoch = s.epoch
	full := s.epoch == 0
	byTopic := map[string]int{}
	for k, rp := range want {
		if !full {
			if h, ok := s.held[k]; ok && samePosition(h, rp) {
				continue
			}
		}
		i, ok := byTopic[k.Topic]
		if !ok {
			i = len(req.Topics)
			byTopic[k.Topic] = i
			req.Topics = append(req.Topics, kmsg.FetchRequestTopic{Topic: k.Topic})
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if !full {
		forgotten := map[string]int{}
		for k := range s.held {
			if _, ok := want[k]; ok {
				continue
			}
			i, ok := forgotten[k.Topic]
			if !ok {
				i = len(req.ForgottenTopics)
				forgotten[k.Topic] = i
				req.ForgottenTopics = append(req.ForgottenTopics, kmsg.FetchRequestForgottenTopic{Topic: k.Topic})
			}
			req.ForgottenTopics[i].Partitions = append(req.ForgottenTopics[i].Partitions, k.Partition)
		}
	}
	return req
}

func samePosition(a, b kmsg.FetchRequestTopicPartition) bool {
	return a.FetchOffset == b.FetchOffset && a.CurrentLeaderEpoch == b.CurrentLeaderEpoch &&
		a.LastFetchedEpoch == b.LastFetchedEpoch && a.LogStartOffset == b.LogStartOffset &&
		a.PartitionMaxBytes == b.PartitionMaxBytes
}

// answered records a reply: the leader now holds want (a full request) or
// what it held updated by the request (an incremental one).
func (s *session) answered(req *kmsg.FetchRequest, id int32, want map[Key]kmsg.FetchRequestTopicPartition) {
	if req.SessionEpoch == 0 {
		if id == 0 {
			// The leader keeps no session for us: every request is full.
			s.id, s.epoch, s.held = 0, 0, nil
			return
		}
		s.id, s.epoch = id, 1
		s.held = make(map[Key]kmsg.FetchRequestTopicPartition, len(want))
		for k, rp := range want {
			s.held[k] = rp
		}
		return
	}
	for _, ft := range req.ForgottenTopics {
		for _, p := range ft.Partitions {
			delete(s.held, Key{ft.Topic, p})
		}
	}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			s.held[Key{rt.Topic, rp.Partition}] = rp
		}
	}
	if s.epoch == math.MaxInt32 {
		s.epoch = 1
	} else {
		s.epoch++
	}
}

// failed forgets what the leader holds after a request with no reply: the
// next request is full, and closes this session on the leader.
func (s *session) failed() {
	s.epoch, s.held = 0, nil
}

// rejected reports whether err says the leader no longer has our session
// (or expected another epoch); the next request opens a new one.
func (s *session) rejected(err error) bool {
	if errors.Is(err, kerr.FetchSessionIDNotFound) || errors.Is(err, kerr.InvalidFetchSessionEpoch) {
		s.id, s.epoch, s.held = 0, 0, nil
		return true
	}
	return false
}
