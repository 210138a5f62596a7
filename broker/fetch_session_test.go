package broker_test

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// sessionFetch is a Fetch v12 for a session: the partitions named at the
// offsets given, and the ones to forget.
func sessionFetch(id, epoch int32, topic string, offsets map[int32]int64, forget ...int32) *kmsg.FetchRequest {
	fr := kmsg.NewPtrFetchRequest()
	fr.Version, fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = 12, -1, 20, 1, 50<<20
	fr.SessionID, fr.SessionEpoch = id, epoch
	if len(offsets) > 0 {
		t := kmsg.FetchRequestTopic{Topic: topic}
		for _, p := range slices.Sorted(mapKeys(offsets)) {
			t.Partitions = append(t.Partitions, kmsg.FetchRequestTopicPartition{Partition: p, CurrentLeaderEpoch: -1,
				LastFetchedEpoch: -1, FetchOffset: offsets[p], PartitionMaxBytes: 1 << 20})
		}
		fr.Topics = []kmsg.FetchRequestTopic{t}
	}
	if len(forget) > 0 {
		fr.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: topic, Partitions: forget}}
	}
	return fr
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// answered lists the partitions a Fetch response names, with how many
// bytes of records each carries.
func answered(resp *kmsg.FetchResponse) map[int32]int {
	out := map[int32]int{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = len(p.RecordBatches)
		}
	}
	return out
}

// KIP-227: a session's incremental fetches name only what changed, and the
// broker answers only partitions with something new; epochs, unknown ids,
// forgotten partitions and closing follow Kafka's rules.
func TestFetchSessions(t *testing.T) {
	_, b := startOne(t)
	adm := admin(t, b)
	if _, err := adm.CreateTopic(ctxT(t), 3, 1, nil, "sess"); err != nil {
		t.Fatal(err)
	}
	waitLeading(t, b, "sess")
	prod := client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo := func(p int32) {
		t.Helper()
		if err := prod.ProduceSync(ctxT(t), &kgo.Record{Topic: "sess", Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produceTo(0)
	c := dialRaw(t, b)

	// A full fetch with epoch 0 opens a session and answers every partition.
	full := c.send(sessionFetch(0, 0, "sess", map[int32]int64{0: 0, 1: 0, 2: 0})).(*kmsg.FetchResponse)
	if full.ErrorCode != 0 || full.SessionID == 0 {
		t.Fatalf("opening fetch: error %d, session %d", full.ErrorCode, full.SessionID)
	}
	if got := answered(full); len(got) != 3 || got[0] == 0 {
		t.Fatalf("opening fetch answered %v, want 3 partitions with records in 0", got)
	}
	id := full.SessionID
	if s := broker.ServerStats(b); s.FetchSessions != 1 {
		t.Fatalf("%d sessions open, want 1", s.FetchSessions)
	}

	// Partition 0 moves on past its record; nothing else is new.
	inc := c.send(sessionFetch(id, 1, "sess", map[int32]int64{0: 1})).(*kmsg.FetchResponse)
	if inc.ErrorCode != 0 || inc.SessionID != id || len(answered(inc)) != 0 {
		t.Fatalf("idle incremental fetch: error %d, session %d, partitions %v", inc.ErrorCode, inc.SessionID, answered(inc))
	}

	// A record in partition 2, which the request does not name: the
	// session remembers its offset, and only it is answered.
	produceTo(2)
	inc = c.send(sessionFetch(id, 2, "sess", nil)).(*kmsg.FetchResponse)
	if got := answered(inc); len(got) != 1 || got[2] == 0 {
		t.Fatalf("incremental fetch after producing to 2 answered %v, want only 2, with records", got)
	}
	if hw := inc.Topics[0].Partitions[0].HighWatermark; hw != 1 {
		t.Fatalf("partition 2's high watermark %d, want 1", hw)
	}

	// The wrong epoch, an unknown id, and the id on another connection.
	if e := c.send(sessionFetch(id, 2, "sess", nil)).(*kmsg.FetchResponse).ErrorCode; e != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("a repeated epoch: error %d, want INVALID_FETCH_SESSION_EPOCH", e)
	}
	if e := c.send(sessionFetch(id+1, 1, "sess", nil)).(*kmsg.FetchResponse).ErrorCode; e != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("an unknown session: error %d, want FETCH_SESSION_ID_NOT_FOUND", e)
	}
	other := dialRaw(t, b)
	if e := other.send(sessionFetch(id, 3, "sess", nil)).(*kmsg.FetchResponse).ErrorCode; e != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("another connection's session: error %d, want FETCH_SESSION_ID_NOT_FOUND", e)
	}

	// Forget partition 2 (moving it on first, so nothing is pending),
	// then new records in 1 and 2: only 1 is answered.
	if got := answered(c.send(sessionFetch(id, 3, "sess", map[int32]int64{2: 1})).(*kmsg.FetchResponse)); len(got) != 0 {
		t.Fatalf("moving 2 on answered %v, want nothing", got)
	}
	if got := answered(c.send(sessionFetch(id, 4, "sess", nil, 2)).(*kmsg.FetchResponse)); len(got) != 0 {
		t.Fatalf("forgetting 2 answered %v, want nothing", got)
	}
	produceTo(1)
	produceTo(2)
	if got := answered(c.send(sessionFetch(id, 5, "sess", nil)).(*kmsg.FetchResponse)); len(got) != 1 || got[1] == 0 {
		t.Fatalf("after forgetting 2, answered %v, want only 1, with records", got)
	}

	// Epoch -1 closes the session and fetches without one.
	closing := c.send(sessionFetch(id, -1, "sess", map[int32]int64{2: 1})).(*kmsg.FetchResponse)
	if closing.ErrorCode != 0 || closing.SessionID != 0 || answered(closing)[2] == 0 {
		t.Fatalf("closing fetch: error %d, session %d, partitions %v", closing.ErrorCode, closing.SessionID, answered(closing))
	}
	if e := c.send(sessionFetch(id, 6, "sess", nil)).(*kmsg.FetchResponse).ErrorCode; e != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("a closed session: error %d, want FETCH_SESSION_ID_NOT_FOUND", e)
	}

	// Sessions end with their connection.
	reopened := c.send(sessionFetch(0, 0, "sess", map[int32]int64{0: 1})).(*kmsg.FetchResponse)
	if reopened.SessionID == 0 {
		t.Fatal("no session reopened")
	}
	if s := broker.ServerStats(b); s.SessionPartitions != 1 {
		t.Fatalf("%d partitions held in sessions, want the reopened session's 1", s.SessionPartitions)
	}
	c.nc.Close()
	testutil.Eventually(t, "sessions closed with their connection", func() bool {
		s := broker.ServerStats(b)
		return s.FetchSessions == 0 && s.SessionPartitions == 0
	})
}

// Followers fetch in sessions, and so do consumers (franz-go opens them):
// records produced to a few partitions of many reach both.
func TestFetchSessionsInUse(t *testing.T) {
	c := brokertest.Start(t, 3)
	waitServing(c)
	b := c.Brokers[0]
	adm := admin(t, b)
	if _, err := adm.CreateTopic(ctxT(t), 12, 3, nil, "many"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	prod := client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var want []string
	for i := range 40 {
		v := string(rune('a'+i%26)) + string(rune('0'+i/26))
		want = append(want, v)
		if err := prod.ProduceSync(ctxT(t), &kgo.Record{Topic: "many", Partition: int32(i % 3), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// No consumer has fetched yet: incremental fetches are followers'.
	testutil.Eventually(t, "followers fetching incrementally", func() bool {
		n := int64(0)
		for _, br := range c.Brokers {
			n += broker.ServerStats(br).IncrementalFetches
		}
		return n > 0
	})
	got := consumeCluster(t, c, "many", len(want))
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	slices.Sort(want)
	if !slices.Equal(values, want) {
		t.Fatalf("consumed %v, want %v", values, want)
	}
	sameLogs(t, c, "many", 0)
}
