package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// val is the value producer 0 writes as its seq-th record in run "t".
func val(seq int) string { return fmt.Sprintf("t-p0-%d-pad", seq) }

// cleanHistory is a correct run: 2 partitions of 5 records each, every
// record acknowledged where the final read has it, one plain consumer and
// one group member that saw everything in order, three identical replicas.
func cleanHistory() *History {
	h := &History{
		Final:        map[int32]*PartitionLog{},
		Replicas:     map[int32]map[int32]*PartitionLog{},
		ReplicaCheck: "done",
	}
	plain := ConsumerLog{Name: "consumer-0"}
	group := ConsumerLog{Name: "group-consumer-0", Group: true}
	seq := 0
	for p := int32(0); p < 2; p++ {
		pl := &PartitionLog{HighWatermark: 5, Records: map[int64]string{}}
		plain.Events = append(plain.Events, ConsumerEvent{Kind: Assigned, Partition: p})
		group.Events = append(group.Events, ConsumerEvent{Kind: Assigned, Partition: p})
		for o := int64(0); o < 5; o++ {
			v := val(seq)
			seq++
			h.Produced = append(h.Produced, Produced{Value: v, Outcome: Acknowledged, Partition: p, Offset: o})
			pl.Records[o] = v
			plain.Events = append(plain.Events, ConsumerEvent{Kind: Record, Partition: p, Offset: o, Value: v})
			group.Events = append(group.Events, ConsumerEvent{Kind: Record, Partition: p, Offset: o, Value: v})
		}
		h.Final[p] = pl
		h.Replicas[p] = map[int32]*PartitionLog{}
		for id := int32(1); id <= 3; id++ {
			h.Replicas[p][id] = &PartitionLog{HighWatermark: 5, Records: maps.Clone(pl.Records)}
		}
	}
	h.Consumers = []ConsumerLog{plain, group}
	return h
}

// only fails the test unless kind is the one violation counted, n times,
// with examples that mention want.
func only(t *testing.T, r *Report, kind string, n int, want string) {
	t.Helper()
	counts := map[string]int{
		KindLost: r.Lost, KindDuplicated: r.Duplicated, KindMultiValueOffset: r.MultiValueOffset,
		KindVanished: r.Vanished, KindReordered: r.Reordered, KindPollSkip: r.PollSkips, KindDivergent: r.Divergent,
		KindAbortedVisible: r.AbortedVisible, KindTornTxn: r.TornTransactions,
	}
	for k, c := range counts {
		if k == kind && c != n {
			t.Errorf("%s = %d, want %d", k, c, n)
		}
		if k != kind && c != 0 {
			t.Errorf("%s = %d, want 0 (examples %q)", k, c, r.Examples[k])
		}
	}
	if r.OK() {
		t.Error("OK() with a violation")
	}
	if ex := strings.Join(r.Examples[kind], "\n"); !strings.Contains(ex, want) {
		t.Errorf("examples of %s = %q, want one mentioning %q", kind, ex, want)
	}
}

func TestCheckCleanHistoryPasses(t *testing.T) {
	r := Check(cleanHistory())
	if !r.OK() || r.Violations() != 0 {
		var b bytes.Buffer
		r.WriteText(&b)
		t.Fatalf("clean history not OK:\n%s", b.String())
	}
	if r.Attempted != 10 || r.Acknowledged != 10 || r.Failed != 0 || r.Unknown != 0 {
		t.Errorf("counts = %d attempted, %d acked, %d failed, %d unknown; want 10, 10, 0, 0", r.Attempted, r.Acknowledged, r.Failed, r.Unknown)
	}
	if r.Consumed["consumer-0"] != 10 || r.Consumed["group-consumer-0"] != 10 {
		t.Errorf("consumed = %v, want 10 each", r.Consumed)
	}
	if r.FinalRecords[0] != 5 || r.FinalRecords[1] != 5 {
		t.Errorf("final records = %v, want 5 per partition", r.FinalRecords)
	}
	if r.ReplicaCheck != "done" || r.ReplicasCompared != 6 || r.OffsetsCompared != 10 {
		t.Errorf("replica check = %q, %d replica logs compared at %d offsets; want done, 6, 10", r.ReplicaCheck, r.ReplicasCompared, r.OffsetsCompared)
	}
}

func TestCheckFindsLost(t *testing.T) {
	h := cleanHistory()
	delete(h.Final[1].Records, 4) // the last acknowledged record of partition 1 is gone...
	h.Final[1].HighWatermark = 4  // ...and the log was truncated under it
	for id := range h.Replicas[1] {
		delete(h.Replicas[1][id].Records, 4)
		h.Replicas[1][id].HighWatermark = 4
	}
	h.Consumers = nil // consumers saw nothing: only the final read shows the loss
	only(t, Check(h), KindLost, 1, "t-p0-9 acknowledged at 1/4 is not in the final read")
}

func TestCheckDoesNotCountFailedUnknownOrRetainedAsLost(t *testing.T) {
	h := cleanHistory()
	h.Produced = append(h.Produced,
		Produced{Value: val(100), Outcome: Failed, Partition: 0, Offset: -1, Err: "timeout"},
		Produced{Value: val(101), Outcome: Unknown, Partition: 0, Offset: -1})
	// Retention deleted offsets 0 and 1 of partition 0.
	delete(h.Final[0].Records, 0)
	delete(h.Final[0].Records, 1)
	h.Final[0].LogStartOffset = 2
	h.Consumers = nil
	r := Check(h)
	if !r.OK() {
		t.Fatalf("violations %d: %v", r.Violations(), r.Examples)
	}
	if r.Failed != 1 || r.Unknown != 1 || r.Acknowledged != 10 || r.Attempted != 12 {
		t.Errorf("counts = %d attempted, %d acked, %d failed, %d unknown", r.Attempted, r.Acknowledged, r.Failed, r.Unknown)
	}
}

func TestCheckFindsDuplicated(t *testing.T) {
	h := cleanHistory()
	h.Final[0].Records[5] = val(2) // written again by a retry
	h.Final[0].HighWatermark = 6
	only(t, Check(h), KindDuplicated, 1, "t-p0-2 is in the final read 2 times")
}

func TestCheckFindsMoved(t *testing.T) {
	h := cleanHistory()
	h.Produced[3].Offset = 1 // acknowledged at 0/1, but the log has it at 0/3
	only(t, Check(h), KindDuplicated, 1, "moved: t-p0-3 acknowledged at 0/1, final read has it at 0/3")
}

func TestCheckFindsMultiValueOffset(t *testing.T) {
	h := cleanHistory()
	// The group member saw a value at 1/2 that the plain consumer and the
	// final read saw differently. Not ours, so neither lost nor vanished
	// can be blamed on the tool's own values.
	ev := h.Consumers[1].Events
	for i := range ev {
		if ev[i].Kind == Record && ev[i].Partition == 1 && ev[i].Offset == 2 {
			ev[i].Value = "foreign"
		}
	}
	r := Check(h)
	if r.MultiValueOffset != 1 {
		t.Fatalf("multi_value_offset = %d, want 1 (%v)", r.MultiValueOffset, r.Examples)
	}
	if ex := r.Examples[KindMultiValueOffset][0]; !strings.Contains(ex, "1/2") || !strings.Contains(ex, "group-consumer-0") || !strings.Contains(ex, "final read") {
		t.Errorf("example = %q", ex)
	}
	// What the group member saw is not there any more: vanished too.
	if r.Vanished != 1 {
		t.Errorf("vanished = %d, want 1", r.Vanished)
	}
	if r.Lost+r.Duplicated+r.Reordered+r.PollSkips+r.Divergent != 0 {
		t.Errorf("unexpected violations: %v", r.Examples)
	}
}

func TestCheckFindsMultiValueWithinFinalRead(t *testing.T) {
	h := cleanHistory()
	h.Final[0].Replaced = []Observation{{Partition: 0, Offset: 4, Value: "earlier"}}
	only(t, Check(h), KindMultiValueOffset, 1, "0/4")
}

func TestCheckFindsVanished(t *testing.T) {
	h := cleanHistory()
	// Consumers saw 0/4, then the partition was truncated to 4 and the
	// record never acknowledged (acks=1 leader died before replicating).
	h.Produced[4].Outcome = Unknown
	h.Produced[4].Offset = -1
	delete(h.Final[0].Records, 4)
	h.Final[0].HighWatermark = 4
	for id := range h.Replicas[0] {
		delete(h.Replicas[0][id].Records, 4)
		h.Replicas[0][id].HighWatermark = 4
	}
	r := Check(h)
	only(t, r, KindVanished, 1, "0/4 t-p0-4 seen by consumer-0: the final high watermark is 4")
}

func TestCheckFindsReordered(t *testing.T) {
	h := cleanHistory()
	c := &h.Consumers[0]
	c.Events = append(c.Events, ConsumerEvent{Kind: Record, Partition: 0, Offset: 2, Value: val(2)})
	only(t, Check(h), KindReordered, 1, "consumer-0 polled 0/2 after 0/4")
}

func TestCheckReorderAfterAssignmentIsFine(t *testing.T) {
	h := cleanHistory()
	c := &h.Consumers[1]
	// A rebalance gave partition 0 back; the member resumed from the
	// committed offset 2.
	c.Events = append(c.Events,
		ConsumerEvent{Kind: Revoked, Partition: 0},
		ConsumerEvent{Kind: Assigned, Partition: 0},
		ConsumerEvent{Kind: Record, Partition: 0, Offset: 2, Value: val(2)})
	if r := Check(h); !r.OK() {
		t.Fatalf("violations after a reassignment: %v", r.Examples)
	}
}

func TestCheckFindsPollSkip(t *testing.T) {
	h := cleanHistory()
	c := &h.Consumers[0]
	// The plain consumer jumped from 0/1 to 0/3: 0/2 holds a record.
	var kept []ConsumerEvent
	for _, e := range c.Events {
		if !(e.Kind == Record && e.Partition == 0 && e.Offset == 2) {
			kept = append(kept, e)
		}
	}
	c.Events = kept
	only(t, Check(h), KindPollSkip, 1, "consumer-0 polled 0/3 after 0/1, skipping 1 records")
}

func TestCheckPollSkipIgnoresEmptyOffsetsAndAssignments(t *testing.T) {
	h := cleanHistory()
	// Offset 0/2 holds no record (a transaction marker, say): jumping over
	// it is fine.
	delete(h.Final[0].Records, 2)
	h.Produced = append(h.Produced[:2], h.Produced[3:]...)
	for i := range h.Consumers {
		var kept []ConsumerEvent
		for _, e := range h.Consumers[i].Events {
			if !(e.Kind == Record && e.Partition == 0 && e.Offset == 2) {
				kept = append(kept, e)
			}
		}
		h.Consumers[i].Events = kept
	}
	for id := range h.Replicas[0] {
		delete(h.Replicas[0][id].Records, 2)
	}
	// A group member newly assigned partition 1 starts at 1/3.
	h.Consumers[1].Events = append(h.Consumers[1].Events,
		ConsumerEvent{Kind: Assigned, Partition: 1},
		ConsumerEvent{Kind: Record, Partition: 1, Offset: 3, Value: val(8)})
	if r := Check(h); !r.OK() {
		t.Fatalf("violations: %v", r.Examples)
	}
}

func TestCheckFindsDivergentReplicas(t *testing.T) {
	h := cleanHistory()
	h.Replicas[1][3].Records[2] = "other"
	only(t, Check(h), KindDivergent, 1, "1/2 below high watermark 5: broker 1 has t-p0-7, broker 3 has \"other\"")
}

func TestCheckDivergenceOnlyBelowEveryHighWatermark(t *testing.T) {
	h := cleanHistory()
	// Broker 2 lags: its high watermark is 3 and it lacks 1/3 and 1/4.
	// Broker 3 has something else at 1/4 that is not yet committed there.
	delete(h.Replicas[1][2].Records, 3)
	delete(h.Replicas[1][2].Records, 4)
	h.Replicas[1][2].HighWatermark = 3
	h.Replicas[1][3].Records[4] = "uncommitted"
	if r := Check(h); !r.OK() {
		t.Fatalf("violations: %v", r.Examples)
	}
	// A replica missing a record below every high watermark diverges.
	delete(h.Replicas[0][2].Records, 1)
	only(t, Check(h), KindDivergent, 1, "broker 2 has no record")
}

func TestCheckSkippedReplicaCheckComparesNothing(t *testing.T) {
	h := cleanHistory()
	h.Replicas[1][3].Records[2] = "other"
	h.ReplicaCheck = "skipped: follower reads not served"
	r := Check(h)
	if !r.OK() || r.ReplicaCheck != "skipped: follower reads not served" {
		t.Fatalf("OK=%v replica check %q, examples %v", r.OK(), r.ReplicaCheck, r.Examples)
	}
}

func TestCheckIncompleteFinalReadIsNotOK(t *testing.T) {
	h := cleanHistory()
	h.FinalReadErr = "partition 1 read to 3 of high watermark 5\nlist offsets: NOT_LEADER_OR_FOLLOWER"
	r := Check(h)
	if r.OK() {
		t.Fatal("OK with an incomplete final read")
	}
	if !strings.HasPrefix(r.FinalRead, "incomplete: partition 1") || strings.Contains(r.FinalRead, "\n") {
		t.Errorf("final read = %q", r.FinalRead)
	}
}

func TestReportJSON(t *testing.T) {
	h := cleanHistory()
	delete(h.Final[0].Records, 0)
	h.Consumers = nil
	h.ReplicaCheck = "skipped: follower reads not served"
	var b bytes.Buffer
	if err := Check(h).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 {
		t.Errorf("JSON is not one line: %q", b.String())
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ok", "attempted", "acknowledged", "failed", "unknown", "lost", "duplicated", "multi_value_offset",
		"vanished", "reordered", "poll_skips", "divergent", "replica_check", "examples"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b.String())
		}
	}
	if got["ok"] != false || got["lost"] != float64(1) || got["acknowledged"] != float64(10) || got["replica_check"] != "skipped: follower reads not served" {
		t.Errorf("JSON = %s", b.String())
	}
	ex, _ := got["examples"].(map[string]any)
	if lost, _ := ex["lost"].([]any); len(lost) != 1 {
		t.Errorf("examples = %v", ex)
	}
}

func TestReportTextHasOneLinePerCount(t *testing.T) {
	h := cleanHistory()
	delete(h.Final[0].Records, 0)
	h.Consumers = nil
	var b bytes.Buffer
	if err := Check(h).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FAILED: 1 violations", "acknowledged:       10", "longest ack gap:", "lost:               1", "examples of lost:", "t-p0-0 acknowledged at 0/0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestValueIDRoundTrip(t *testing.T) {
	v := makeValue("run1", 3, 42, 100, rand.New(rand.NewPCG(1, 2)))
	if len(v) != 100 {
		t.Fatalf("len = %d", len(v))
	}
	if id, ok := valueID(v); !ok || id != "run1-p3-42" {
		t.Errorf("valueID(%q) = %q, %v", v, id, ok)
	}
	for _, foreign := range []string{"hello", "a-b-c", "run-px-1-", "run-p1-x-"} {
		if _, ok := valueID(foreign); ok {
			t.Errorf("valueID(%q) accepted", foreign)
		}
	}
}

// Transactions: an aborted record is never counted lost, but seen by the
// final read or a consumer it is a violation; a transaction whose end is
// unknown may be absent or whole, never in part.
func TestCheckTransactions(t *testing.T) {
	h := cleanHistory()
	h.Produced = append(h.Produced,
		Produced{Value: val(100), Outcome: Aborted, Partition: 0, Offset: 5, Txn: "p0-t1"},
		Produced{Value: val(101), Outcome: Unknown, Partition: 0, Offset: -1, Txn: "p0-t2"},
		Produced{Value: val(102), Outcome: Unknown, Partition: 1, Offset: -1, Txn: "p0-t2"})
	r := Check(h)
	if !r.OK() || r.Aborted != 1 || r.Unknown != 2 {
		t.Fatalf("an aborted and an absent undecided transaction: OK %v, aborted %d, unknown %d", r.OK(), r.Aborted, r.Unknown)
	}

	seen := cleanHistory()
	seen.Produced = append(seen.Produced, Produced{Value: val(100), Outcome: Aborted, Partition: 0, Offset: 5, Txn: "p0-t1"})
	seen.Final[0].Records[5], seen.Final[0].HighWatermark = val(100), 6
	only(t, Check(seen), KindAbortedVisible, 1, "of aborted p0-t1 is in the final read at 0/5")

	polled := cleanHistory()
	polled.Produced = append(polled.Produced, Produced{Value: val(100), Outcome: Aborted, Partition: 0, Offset: 5, Txn: "p0-t1"})
	polled.Consumers[0].Events = append(polled.Consumers[0].Events, ConsumerEvent{Kind: Record, Partition: 0, Offset: 5, Value: val(100)})
	r = Check(polled)
	if r.AbortedVisible != 1 || !strings.Contains(strings.Join(r.Examples[KindAbortedVisible], ""), "was polled by consumer-0") {
		t.Errorf("an aborted record polled by a consumer: %d, %q", r.AbortedVisible, r.Examples[KindAbortedVisible])
	}

	torn := cleanHistory()
	torn.Produced = append(torn.Produced,
		Produced{Value: val(101), Outcome: Unknown, Partition: 0, Offset: -1, Txn: "p0-t2"},
		Produced{Value: val(102), Outcome: Unknown, Partition: 1, Offset: -1, Txn: "p0-t2"})
	torn.Final[0].Records[5], torn.Final[0].HighWatermark = val(101), 6
	only(t, Check(torn), KindTornTxn, 1, "p0-t2: 1 of its 2 records in the final read")
}

// The longest gap between acknowledgements is how long producing stalled:
// the acks' times in any order, failed records not counted.
func TestLongestAckGap(t *testing.T) {
	h := cleanHistory()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range h.Produced {
		h.Produced[i].AckedAt = base.Add(time.Duration(len(h.Produced)-i) * 10 * time.Millisecond)
	}
	h.Produced[3].AckedAt = base.Add(3 * time.Second) // the producer stalled before this one
	h.Produced[4].Outcome, h.Produced[4].AckedAt = Failed, base.Add(time.Hour)
	if r := Check(h); r.LongestAckGapMs != 3000-100 {
		t.Errorf("longest gap %d ms, want %d", r.LongestAckGapMs, 3000-100)
	}
}
