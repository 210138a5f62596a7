package protocol

// Fetch sessions (KIP-227, Fetch v7+). A client that fetches the same
// partitions round after round opens a session with a full request
// (SessionID 0, SessionEpoch 0); the broker keeps the partitions and their
// fetch positions, and each later request (SessionID, SessionEpoch 1, 2,
// ...) names only the partitions whose position changed and those to
// forget, while the response names only the partitions with something new:
// records, an error, or a moved high watermark, last stable offset or log
// start offset. A follower of 1,000 idle partitions then sends and receives
// a few bytes a round instead of every partition twice.
//
// Sessions belong to the connection that opened them and end with it (a
// client that reconnects gets FETCH_SESSION_ID_NOT_FOUND and opens a new
// one, as Kafka clients do when a broker evicted theirs). A connection holds
// at most maxSessionsPerConn (the oldest goes), a session at most
// maxSessionPartitions, and all sessions of the server together at most
// maxServerSessionPartitions, so clients cannot make the broker keep
// unbounded state: past it, full fetches get no session (session id 0,
// which KIP-227 allows) and incremental ones that would add partitions end
// theirs (FETCH_SESSION_ID_NOT_FOUND).

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	maxSessionsPerConn         = 4
	maxSessionPartitions       = 100_000
	maxServerSessionPartitions = 1_000_000
)

type topicPartition struct {
	topic     string
	partition int32
}

// sessionPart is one partition of a session: what the client asked for
// last, and what it was last told.
type sessionPart struct {
	req kmsg.FetchRequestTopicPartition
	// The values the client holds from our responses: a partition is sent
	// again when one of them moves.
	highWatermark, lastStableOffset, logStartOffset int64
}

type fetchSession struct {
	id      int32
	replica int32 // the ReplicaID of the request that opened it
	// budget is the server's count of partitions held in sessions.
	budget *atomic.Int64

	mu    sync.Mutex
	epoch int32 // the epoch the next incremental request must carry
	order []topicPartition
	parts map[topicPartition]*sessionPart
}

// fetchSessions are one connection's sessions, touched only by its reader
// (each session's own fields have their own lock: replies finish on other
// goroutines).
type fetchSessions struct {
	byID  map[int32]*fetchSession
	order []int32       // creation order, for eviction
	count *atomic.Int64 // the server's count of open sessions
	parts *atomic.Int64 // the server's count of partitions in sessions
}

// sessionFetch is what a Fetch request resolved to: the partitions to read
// and, with a session, how to trim the reply.
type sessionFetch struct {
	topics      []kmsg.FetchRequestTopic
	session     *fetchSession // nil: sessionless
	incremental bool
	errorCode   int16 // a session error: answered at once, with no partitions
}

// resolveSession applies a Fetch request's session fields (v7+). It runs
// on the connection's reader, before the reply waits.
func (c *conn) resolveSession(req *kmsg.FetchRequest) sessionFetch {
	if req.Version < 7 {
		return sessionFetch{topics: req.Topics}
	}
	ss := &c.sessions
	ss.count, ss.parts = &c.s.fetchSessions, &c.s.sessionPartitions
	id, epoch := req.SessionID, req.SessionEpoch
	if epoch == 0 || epoch == -1 {
		// A full request: it closes the session named, if any, and with
		// epoch 0 opens a new one for exactly these partitions.
		if id != 0 {
			ss.remove(id)
		}
		if epoch == -1 {
			return sessionFetch{topics: req.Topics}
		}
		s := ss.open(req)
		if s == nil {
			return sessionFetch{topics: req.Topics} // too big: sessionless
		}
		return sessionFetch{topics: req.Topics, session: s}
	}
	s := ss.byID[id]
	if s == nil || s.replica != req.ReplicaID {
		return sessionFetch{errorCode: kerr.FetchSessionIDNotFound.Code}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch != s.epoch {
		return sessionFetch{errorCode: kerr.InvalidFetchSessionEpoch.Code}
	}
	for _, ft := range req.ForgottenTopics {
		for _, p := range ft.Partitions {
			s.forget(topicPartition{ft.Topic, p})
		}
	}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := topicPartition{rt.Topic, rp.Partition}
			if sp := s.parts[k]; sp != nil {
				sp.req = rp
				continue
			}
			if len(s.parts) >= maxSessionPartitions || !s.add(k, rp) {
				ss.remove(id)
				return sessionFetch{errorCode: kerr.FetchSessionIDNotFound.Code}
			}
		}
	}
	s.compact()
	s.epoch = nextSessionEpoch(epoch)
	c.s.incrementalFetches.Add(1)
	return sessionFetch{topics: s.requestTopics(), session: s, incremental: true}
}

func nextSessionEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// open starts a session for a full request's partitions, evicting the
// connection's oldest session if it holds too many. It returns nil when
// the request names too many partitions for one.
func (ss *fetchSessions) open(req *kmsg.FetchRequest) *fetchSession {
	n := 0
	for _, rt := range req.Topics {
		n += len(rt.Partitions)
	}
	if n > maxSessionPartitions || ss.parts.Load()+int64(n) > maxServerSessionPartitions {
		return nil
	}
	if ss.byID == nil {
		ss.byID = map[int32]*fetchSession{}
	}
	for len(ss.order) >= maxSessionsPerConn {
		ss.remove(ss.order[0])
	}
	id := rand.Int32N(math.MaxInt32) + 1
	for ss.byID[id] != nil {
		id = rand.Int32N(math.MaxInt32) + 1
	}
	s := &fetchSession{id: id, replica: req.ReplicaID, budget: ss.parts, epoch: 1, parts: make(map[topicPartition]*sessionPart, n)}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := topicPartition{rt.Topic, rp.Partition}
			if sp := s.parts[k]; sp != nil {
				sp.req = rp // named twice: the last wins, as in incremental requests
				continue
			}
			if !s.add(k, rp) {
				s.release() // others filled the budget meanwhile
				return nil
			}
		}
	}
	ss.byID[id] = s
	ss.order = append(ss.order, id)
	ss.count.Add(1)
	return s
}

func (ss *fetchSessions) remove(id int32) {
	if ss.byID[id] == nil {
		return
	}
	ss.byID[id].release()
	delete(ss.byID, id)
	ss.count.Add(-1)
	for i, o := range ss.order {
		if o == id {
			ss.order = append(ss.order[:i], ss.order[i+1:]...)
			break
		}
	}
}

// closeAll ends every session: the connection is gone.
func (ss *fetchSessions) closeAll() {
	for len(ss.order) > 0 {
		ss.remove(ss.order[0])
	}
}

// add puts a partition in the session, if the server's budget has room;
// the client has been told nothing about it yet, so the first reply
// includes it.
func (s *fetchSession) add(k topicPartition, rp kmsg.FetchRequestTopicPartition) bool {
	if s.budget.Add(1) > maxServerSessionPartitions {
		s.budget.Add(-1)
		return false
	}
	s.parts[k] = &sessionPart{req: rp, highWatermark: -2, lastStableOffset: -2, logStartOffset: -2}
	s.order = append(s.order, k)
	return true
}

// forget drops a partition; compact removes it from the order.
func (s *fetchSession) forget(k topicPartition) {
	if _, ok := s.parts[k]; ok {
		delete(s.parts, k)
		s.budget.Add(-1)
	}
}

// release gives the session's partitions back to the server's budget.
func (s *fetchSession) release() { s.budget.Add(-int64(len(s.parts))) }

func (s *fetchSession) compact() {
	if len(s.order) == len(s.parts) {
		return
	}
	kept := s.order[:0]
	for _, k := range s.order {
		if s.parts[k] != nil {
			kept = append(kept, k)
		}
	}
	clear(s.order[len(kept):])
	s.order = kept
}

// requestTopics lists the session's partitions as a full request would,
// grouping runs of one topic.
func (s *fetchSession) requestTopics() []kmsg.FetchRequestTopic {
	var out []kmsg.FetchRequestTopic
	for _, k := range s.order {
		if len(out) == 0 || out[len(out)-1].Topic != k.topic {
			out = append(out, kmsg.FetchRequestTopic{Topic: k.topic})
		}
		t := &out[len(out)-1]
		t.Partitions = append(t.Partitions, s.parts[k].req)
	}
	return out
}

// finish makes the reply the session's: it takes the session id, and an
// incremental reply keeps only the partitions the client must hear about.
// What the client is told is remembered, so the next reply can leave out
// what it already knows.
func (sf *sessionFetch) finish(fr *fetchReply) {
	s := sf.session
	if s == nil {
		return
	}
	fr.sessionID = s.id
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := fr.topics[:0]
	for _, ft := range fr.topics {
		parts := ft.partitions[:0]
		for _, fp := range ft.partitions {
			sp := s.parts[topicPartition{ft.name, fp.id}]
			if sp == nil {
				fp.records.Release() // forgotten by a later request: the client no longer asks
				continue
			}
			moved := fp.highWatermark != sp.highWatermark || fp.lastStableOffset != sp.lastStableOffset || fp.logStartOffset != sp.logStartOffset
			sp.highWatermark, sp.lastStableOffset, sp.logStartOffset = fp.highWatermark, fp.lastStableOffset, fp.logStartOffset
			if sf.incremental && !moved && fp.records.Empty() && fp.errorCode == 0 && !fp.preferred && !fp.diverging {
				continue
			}
			parts = append(parts, fp)
		}
		if len(parts) > 0 {
			ft.partitions = parts
			kept = append(kept, ft)
		}
	}
	fr.topics = kept
}
