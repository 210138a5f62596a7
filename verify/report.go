package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// The violation kinds, as Report.Examples and the JSON output name them.
const (
	KindLost             = "lost"
	KindDuplicated       = "duplicated"
	KindMultiValueOffset = "multi_value_offset"
	KindVanished         = "vanished"
	KindReordered        = "reordered"
	KindPollSkip         = "poll_skips"
	KindDivergent        = "divergent"
	KindAbortedVisible   = "aborted_visible"
	KindTornTxn          = "torn_transaction"
)

// maxExamples bounds the examples kept per kind.
const maxExamples = 20

// Report is the outcome of a run: counts, violations and examples.
type Report struct {
	Topic string `json:"topic"`
	// Producer outcomes.
	Attempted    int `json:"attempted"`
	Acknowledged int `json:"acknowledged"`
	Failed       int `json:"failed"`
	Unknown      int `json:"unknown"`
	Aborted      int `json:"aborted"`
	// LongestAckGapMs is the longest time no producer had a record
	// acknowledged, between the first acknowledgement and the last: how
	// long producing stalled (a failover, a leader moved).
	LongestAckGapMs int64 `json:"longest_ack_gap_ms"`
	// Consumed is how many records each consumer polled, by name.
	Consumed map[string]int `json:"consumed"`
	// FinalRecords is how many records the final read found per partition.
	FinalRecords map[int32]int `json:"final_records"`
	// FinalRead is "complete" or "incomplete: <why>".
	FinalRead string `json:"final_read"`

	// Violations.
	Lost             int `json:"lost"`
	Duplicated       int `json:"duplicated"` // includes moved records
	MultiValueOffset int `json:"multi_value_offset"`
	Vanished         int `json:"vanished"`
	Reordered        int `json:"reordered"`
	PollSkips        int `json:"poll_skips"`
	Divergent        int `json:"divergent"`
	// AbortedVisible counts aborted records a read_committed reader saw;
	// TornTransactions the transactions of unknown end seen in part.
	AbortedVisible   int `json:"aborted_visible"`
	TornTransactions int `json:"torn_transactions"`
	// ReplicaCheck is "done" or "skipped: <why>".
	ReplicaCheck string `json:"replica_check"`
	// ReplicasCompared counts the replica logs compared, over every
	// partition with at least two replicas.
	ReplicasCompared int `json:"replicas_compared"`
	// OffsetsCompared counts the partition offsets at which every replica
	// was compared.
	OffsetsCompared int64 `json:"offsets_compared"`

	// Examples holds up to 20 descriptions per violation kind.
	Examples map[string][]string `json:"examples"`
}

// Violations is the total of every violation count.
func (r *Report) Violations() int {
	return r.Lost + r.Duplicated + r.MultiValueOffset + r.Vanished + r.Reordered + r.PollSkips + r.Divergent +
		r.AbortedVisible + r.TornTransactions
}

// OK reports a run without violations whose final read completed.
func (r *Report) OK() bool {
	return r.Violations() == 0 && r.FinalRead == "complete"
}

func (r *Report) example(kind, format string, args ...any) {
	if r.Examples == nil {
		r.Examples = map[string][]string{}
	}
	if len(r.Examples[kind]) < maxExamples {
		r.Examples[kind] = append(r.Examples[kind], fmt.Sprintf(format, args...))
	}
}

// WriteText writes the human summary: one line per count, then examples.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "OK: no violations"
	if !r.OK() {
		verdict = fmt.Sprintf("FAILED: %d violations", r.Violations())
		if r.Violations() == 0 {
			verdict = "FAILED: final read incomplete"
		}
	}
	fmt.Fprintf(&b, "verify %s: %s\n", r.Topic, verdict)
	fmt.Fprintf(&b, "attempted:          %d\n", r.Attempted)
	fmt.Fprintf(&b, "acknowledged:       %d\n", r.Acknowledged)
	fmt.Fprintf(&b, "failed:             %d\n", r.Failed)
	fmt.Fprintf(&b, "unknown:            %d\n", r.Unknown)
	if r.Aborted > 0 {
		fmt.Fprintf(&b, "aborted:            %d\n", r.Aborted)
	}
	fmt.Fprintf(&b, "longest ack gap:    %d ms\n", r.LongestAckGapMs)
	for _, name := range slices.Sorted(maps.Keys(r.Consumed)) {
		fmt.Fprintf(&b, "consumed by %s: %d\n", name, r.Consumed[name])
	}
	for _, p := range slices.Sorted(maps.Keys(r.FinalRecords)) {
		fmt.Fprintf(&b, "final records p%d:  %d\n", p, r.FinalRecords[p])
	}
	fmt.Fprintf(&b, "final read:         %s\n", r.FinalRead)
	fmt.Fprintf(&b, "lost:               %d\n", r.Lost)
	fmt.Fprintf(&b, "duplicated:         %d\n", r.Duplicated)
	fmt.Fprintf(&b, "multi-value-offset: %d\n", r.MultiValueOffset)
	fmt.Fprintf(&b, "vanished:           %d\n", r.Vanished)
	fmt.Fprintf(&b, "reordered:          %d\n", r.Reordered)
	fmt.Fprintf(&b, "poll-skips:         %d\n", r.PollSkips)
	fmt.Fprintf(&b, "divergent:          %d\n", r.Divergent)
	fmt.Fprintf(&b, "aborted-visible:    %d\n", r.AbortedVisible)
	fmt.Fprintf(&b, "torn-transactions:  %d\n", r.TornTransactions)
	if r.ReplicaCheck == replicaCheckDone {
		fmt.Fprintf(&b, "replica check:      done (%d replica logs compared at %d offsets)\n", r.ReplicasCompared, r.OffsetsCompared)
	} else {
		fmt.Fprintf(&b, "replica check:      %s\n", r.ReplicaCheck)
	}
	for _, kind := range []string{KindLost, KindDuplicated, KindMultiValueOffset, KindVanished, KindReordered, KindPollSkip, KindDivergent,
		KindAbortedVisible, KindTornTxn} {
		ex := r.Examples[kind]
		if len(ex) == 0 {
			continue
		}
		fmt.Fprintf(&b, "examples of %s:\n", kind)
		for _, e := range ex {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as one JSON object with "ok" added.
func (r *Report) WriteJSON(w io.Writer) error {
	type alias Report // no methods: no recursion into a MarshalJSON
	out := struct {
		OK bool `json:"ok"`
		alias
	}{r.OK(), alias(*r)}
	if out.Examples == nil {
		out.Examples = map[string][]string{}
	}
	if out.Consumed == nil {
		out.Consumed = map[string]int{}
	}
	if out.FinalRecords == nil {
		out.FinalRecords = map[int32]int{}
	}
	return json.NewEncoder(w).Encode(out)
}
