package verify

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Check turns a History into a Report. It is a pure function: every
// violation it finds is evidence in the history, and nothing else.
//
//   - lost: an acknowledged value absent from the final read (unless its
//     acknowledged offset is below the final log start: retention took it);
//   - duplicated: a value of this tool at two places in the final read, or
//     an acknowledged value found somewhere other than where it was
//     acknowledged ("moved");
//   - multi_value_offset: two different values seen at one partition and
//     offset, by consumers and the final read together;
//   - vanished: a value a consumer polled at an offset at or above the final
//     log start where the final read no longer has it (truncated away, or
//     replaced);
//   - reordered: a consumer's offsets in a partition did not increase
//     without an assignment in between;
//   - poll_skips: a consumer jumped over offsets that the final read shows
//     to hold records, without an assignment in between;
//   - divergent: two replicas serve different values (or one serves none)
//     at an offset below every replica's high watermark;
//   - aborted_visible: a record of an aborted transaction in the final
//     read or polled by a consumer (both read_committed);
//   - torn_transaction: a transaction whose end the producer did not learn
//     seen in part in the final read (it must be whole or absent).
func Check(h *History) *Report {
	r := &Report{
		Consumed:     map[string]int{},
		FinalRecords: map[int32]int{},
		Examples:     map[string][]string{},
		FinalRead:    "complete",
		ReplicaCheck: oneLine(h.ReplicaCheck),
	}
	if h.FinalReadErr != "" {
		r.FinalRead = "incomplete: " + oneLine(h.FinalReadErr)
	}
	if r.ReplicaCheck == "" {
		r.ReplicaCheck = "skipped: not run"
	}
	for p, pl := range h.Final {
		r.FinalRecords[p] = len(pl.Records)
	}
	checkProduced(h, r)
	checkTransactions(h, r)
	checkDuplicates(h, r)
	checkMultiValue(h, r)
	checkVanished(h, r)
	for _, c := range h.Consumers {
		checkConsumerOrder(h, c, r)
	}
	if h.ReplicaCheck == "done" {
		checkReplicas(h, r)
	}
	return r
}

// location is where the final read found a value.
type location struct {
	partition int32
	offset    int64
}

// finalIndex maps each value of this tool in the final read to where it is,
// in partition and offset order.
func finalIndex(h *History) map[string][]location {
	idx := map[string][]location{}
	for _, p := range slices.Sorted(maps.Keys(h.Final)) {
		pl := h.Final[p]
		for _, o := range slices.Sorted(maps.Keys(pl.Records)) {
			v := pl.Records[o]
			if _, ok := valueID(v); ok {
				idx[v] = append(idx[v], location{p, o})
			}
		}
	}
	return idx
}

// longestAckGap is the longest time between two consecutive
// acknowledgements, over every producer.
func longestAckGap(h *History) time.Duration {
	var at []time.Time
	for _, p := range h.Produced {
		if p.Outcome == Acknowledged && !p.AckedAt.IsZero() {
			at = append(at, p.AckedAt)
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	var longest time.Duration
	for i := 1; i < len(at); i++ {
		longest = max(longest, at[i].Sub(at[i-1]))
	}
	return longest
}

func checkProduced(h *History, r *Report) {
	r.LongestAckGapMs = longestAckGap(h).Milliseconds()
	idx := finalIndex(h)
	for _, p := range h.Produced {
		r.Attempted++
		switch p.Outcome {
		case Failed:
			r.Failed++
			continue
		case Unknown:
			r.Unknown++
			continue
		case Aborted:
			r.Aborted++
			continue
		}
		r.Acknowledged++
		locs := idx[p.Value]
		if len(locs) == 0 {
			if pl := h.Final[p.Partition]; p.Offset >= 0 && pl != nil && p.Offset < pl.LogStartOffset {
				continue // below the log start: deleted by retention, not lost
			}
			r.Lost++
			r.example(KindLost, "%s acknowledged at %d/%d is not in the final read", short(p.Value), p.Partition, p.Offset)
			continue
		}
		if p.Offset < 0 {
			continue // acks=0: no offset to compare
		}
		if !slices.Contains(locs, location{p.Partition, p.Offset}) {
			r.Duplicated++
			r.example(KindDuplicated, "moved: %s acknowledged at %d/%d, final read has it at %d/%d", short(p.Value), p.Partition, p.Offset, locs[0].partition, locs[0].offset)
		}
	}
}

// checkTransactions finds aborted records that readers saw, and
// transactions of unknown end seen in part by the final read.
func checkTransactions(h *History, r *Report) {
	idx := finalIndex(h)
	consumed := map[string]string{} // value -> consumer that polled it
	for _, c := range h.Consumers {
		for _, e := range c.Events {
			if e.Kind == Record {
				consumed[e.Value] = c.Name
			}
		}
	}
	type txn struct{ total, seen int }
	undecided := map[string]*txn{}
	for _, p := range h.Produced {
		if p.Txn == "" {
			continue
		}
		switch p.Outcome {
		case Aborted:
			if locs := idx[p.Value]; len(locs) > 0 {
				r.AbortedVisible++
				r.example(KindAbortedVisible, "%s of aborted %s is in the final read at %d/%d", short(p.Value), p.Txn, locs[0].partition, locs[0].offset)
			} else if name, ok := consumed[p.Value]; ok {
				r.AbortedVisible++
				r.example(KindAbortedVisible, "%s of aborted %s was polled by %s", short(p.Value), p.Txn, name)
			}
		case Unknown, Failed:
			t := undecided[p.Txn]
			if t == nil {
				t = &txn{}
				undecided[p.Txn] = t
			}
			t.total++
			if len(idx[p.Value]) > 0 {
				t.seen++
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(undecided)) {
		if t := undecided[name]; t.seen > 0 && t.seen < t.total {
			r.TornTransactions++
			r.example(KindTornTxn, "%s: %d of its %d records in the final read", name, t.seen, t.total)
		}
	}
}

func checkDuplicates(h *History, r *Report) {
	idx := finalIndex(h)
	for _, v := range slices.Sorted(maps.Keys(idx)) {
		locs := idx[v]
		if len(locs) < 2 {
			continue
		}
		r.Duplicated++
		var at []string
		for _, l := range locs {
			at = append(at, Observation{l.partition, l.offset, ""}.at())
		}
		r.example(KindDuplicated, "%s is in the final read %d times: at %s", short(v), len(locs), strings.Join(at, ", "))
	}
}

func (o Observation) at() string { return fmt.Sprintf("%d/%d", o.Partition, o.Offset) }

func checkMultiValue(h *History, r *Report) {
	seen := map[location]map[string][]string{} // value -> who saw it
	add := func(p int32, o int64, v, who string) {
		l := location{p, o}
		if seen[l] == nil {
			seen[l] = map[string][]string{}
		}
		if !slices.Contains(seen[l][v], who) {
			seen[l][v] = append(seen[l][v], who)
		}
	}
	for _, c := range h.Consumers {
		for _, e := range c.Events {
			if e.Kind == Record {
				add(e.Partition, e.Offset, e.Value, c.Name)
			}
		}
	}
	for p, pl := range h.Final {
		for o, v := range pl.Records {
			add(p, o, v, "final read")
		}
		for _, ob := range pl.Replaced {
			add(ob.Partition, ob.Offset, ob.Value, "final read (earlier)")
		}
	}
	locs := slices.SortedFunc(maps.Keys(seen), func(a, b location) int {
		if a.partition != b.partition {
			return int(a.partition - b.partition)
		}
		return cmpInt64(a.offset, b.offset)
	})
	for _, l := range locs {
		vals := seen[l]
		if len(vals) < 2 {
			continue
		}
		r.MultiValueOffset++
		var parts []string
		for _, v := range slices.Sorted(maps.Keys(vals)) {
			parts = append(parts, short(v)+" (seen by "+strings.Join(vals[v], ", ")+")")
		}
		r.example(KindMultiValueOffset, "%d/%d holds different values: %s", l.partition, l.offset, strings.Join(parts, " vs "))
	}
}

func checkVanished(h *History, r *Report) {
	done := map[Observation]bool{}
	for _, c := range h.Consumers {
		for _, e := range c.Events {
			ob := Observation{e.Partition, e.Offset, e.Value}
			if e.Kind != Record || done[ob] {
				continue
			}
			done[ob] = true
			pl := h.Final[e.Partition]
			if pl == nil || e.Offset < pl.LogStartOffset {
				continue // not read finally, or deleted by retention
			}
			now, ok := pl.Records[e.Offset]
			if ok && now == e.Value {
				continue
			}
			r.Vanished++
			switch {
			case ok:
				r.example(KindVanished, "%s seen by %s: the final read has %s there", ob, c.Name, short(now))
			case e.Offset >= pl.HighWatermark:
				r.example(KindVanished, "%s seen by %s: the final high watermark is %d", ob, c.Name, pl.HighWatermark)
			default:
				r.example(KindVanished, "%s seen by %s: the final read has no record there", ob, c.Name)
			}
		}
	}
}

// checkConsumerOrder finds offsets going backwards or skipping records in
// one consumer's polls. An assignment or revocation resets a partition:
// the next record may start anywhere.
func checkConsumerOrder(h *History, c ConsumerLog, r *Report) {
	last := map[int32]int64{}
	for _, e := range c.Events {
		switch e.Kind {
		case Assigned, Revoked:
			delete(last, e.Partition)
			continue
		}
		r.Consumed[c.Name]++
		prev, ok := last[e.Partition]
		last[e.Partition] = e.Offset
		if !ok {
			continue
		}
		if e.Offset <= prev {
			r.Reordered++
			r.example(KindReordered, "%s polled %d/%d after %d/%d", c.Name, e.Partition, e.Offset, e.Partition, prev)
			continue
		}
		if e.Offset == prev+1 {
			continue
		}
		if n := recordsBetween(h.Final[e.Partition], prev, e.Offset); n > 0 {
			r.PollSkips++
			r.example(KindPollSkip, "%s polled %d/%d after %d/%d, skipping %d records the final read has", c.Name, e.Partition, e.Offset, e.Partition, prev, n)
		}
	}
}

// recordsBetween counts the records pl holds strictly between lo and hi.
func recordsBetween(pl *PartitionLog, lo, hi int64) int {
	if pl == nil {
		return 0
	}
	n := 0
	if hi-lo-1 <= int64(len(pl.Records)) {
		for o := lo + 1; o < hi; o++ {
			if _, ok := pl.Records[o]; ok {
				n++
			}
		}
		return n
	}
	for o := range pl.Records {
		if o > lo && o < hi {
			n++
		}
	}
	return n
}

// checkReplicas compares every replica of a partition offset by offset
// from the highest log start up to the lowest high watermark: below the
// high watermark replicas must agree.
func checkReplicas(h *History, r *Report) {
	for _, p := range slices.Sorted(maps.Keys(h.Replicas)) {
		reps := h.Replicas[p]
		if len(reps) < 2 {
			continue
		}
		ids := slices.Sorted(maps.Keys(reps))
		r.ReplicasCompared += len(ids)
		lo, hi := int64(0), int64(1<<62)
		for _, id := range ids {
			lo = max(lo, reps[id].LogStartOffset)
			hi = min(hi, reps[id].HighWatermark)
		}
		r.OffsetsCompared += max(hi-lo, 0)
		for o := lo; o < hi; o++ {
			first, firstOK := reps[ids[0]].Records[o]
			for _, id := range ids[1:] {
				v, ok := reps[id].Records[o]
				if ok == firstOK && v == first {
					continue
				}
				r.Divergent++
				r.example(KindDivergent, "%d/%d below high watermark %d: broker %d has %s, broker %d has %s",
					p, o, hi, ids[0], describe(first, firstOK), id, describe(v, ok))
				break
			}
		}
	}
}

// oneLine keeps a joined error on the one line the summary gives it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func describe(v string, ok bool) string {
	if !ok {
		return "no record"
	}
	return short(v)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
