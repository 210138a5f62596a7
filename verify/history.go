package verify

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// History is everything a run observed: the input of Check. Tests and a
// fault harness may build one by hand.
type History struct {
	// Produced holds one entry per record a producer attempted.
	Produced []Produced
	// Consumers holds each consumer's observations in the order it made
	// them.
	Consumers []ConsumerLog
	// Final is the final read, by partition; a partition missing here was
	// not read.
	Final map[int32]*PartitionLog
	// FinalReadErr says why the final read is incomplete; empty when every
	// partition was read up to its high watermark.
	FinalReadErr string
	// Replicas is each partition's log as each replica broker served it,
	// by partition and then broker id.
	Replicas map[int32]map[int32]*PartitionLog
	// ReplicaCheck is "done", or "skipped: <why>" when replicas could not
	// be compared (then Replicas is ignored).
	ReplicaCheck string
}

// Outcome is what a producer learned about one record.
type Outcome uint8

// The outcomes of a produce.
const (
	// Unknown: still in flight when the run stopped waiting; it may or may
	// not be in the log.
	Unknown Outcome = iota
	// Acknowledged: the cluster acknowledged it at Partition/Offset.
	Acknowledged
	// Failed: the client reported an error. The record may still have been
	// written (a timeout), so a failed record is never counted lost.
	Failed
	// Aborted: its transaction was aborted (the abort acknowledged): no
	// read_committed reader may see it.
	Aborted
)

func (o Outcome) String() string {
	switch o {
	case Acknowledged:
		return "acknowledged"
	case Failed:
		return "failed"
	case Aborted:
		return "aborted"
	}
	return "unknown"
}

// Produced is one attempted record and its outcome.
type Produced struct {
	Value     string
	Outcome   Outcome
	Partition int32
	// Offset is where the ack placed the record; -1 when the ack carried
	// none (acks=0) or the record was not acknowledged.
	Offset int64
	// Err is the client's error for a failed record.
	Err string
	// Txn names the record's transaction ("p<producer>-t<n>"), empty when
	// the producer is not transactional: a transaction whose end is not
	// known must be seen whole or not at all.
	Txn string
	// AckedAt is when the acknowledgement arrived (zero otherwise).
	AckedAt time.Time
}

// EventKind tells what a consumer event is.
type EventKind uint8

// The events a consumer records.
const (
	// Record: the consumer polled Value at Partition/Offset.
	Record EventKind = iota
	// Assigned: the consumer was given Partition (a group rebalance, or
	// the start of a plain consumer); it may resume anywhere.
	Assigned
	// Revoked: the consumer lost Partition.
	Revoked
)

// ConsumerEvent is one thing a consumer saw.
type ConsumerEvent struct {
	Kind      EventKind
	Partition int32
	Offset    int64
	Value     string
}

// ConsumerLog is one consumer's events in order.
type ConsumerLog struct {
	Name   string
	Group  bool
	Events []ConsumerEvent
}

// PartitionLog is one partition as one read saw it.
type PartitionLog struct {
	LogStartOffset int64
	HighWatermark  int64
	// Records maps offset to value.
	Records map[int64]string
	// Replaced holds values that an offset held earlier in the same read
	// and no longer held when it was read again: the log was rewritten
	// under the reader.
	Replaced []Observation
}

// Observation is a value at a partition and offset.
type Observation struct {
	Partition int32
	Offset    int64
	Value     string
}

func (o Observation) String() string {
	return fmt.Sprintf("%d/%d %s", o.Partition, o.Offset, short(o.Value))
}

// valueID is the identifying prefix of a value verify wrote,
// "<run>-p<producer>-<seq>", and whether the value is one.
func valueID(v string) (string, bool) {
	parts := strings.SplitN(v, "-", 4)
	if len(parts) < 3 || parts[0] == "" || len(parts[1]) < 2 || parts[1][0] != 'p' {
		return "", false
	}
	if _, err := strconv.Atoi(parts[1][1:]); err != nil {
		return "", false
	}
	if _, err := strconv.ParseInt(parts[2], 10, 64); err != nil {
		return "", false
	}
	return parts[0] + "-" + parts[1] + "-" + parts[2], true
}

// makeValue builds producer's seq-th value: its id, then letters from rng up
// to size bytes.
func makeValue(run string, producer int, seq int64, size int, rng *rand.Rand) string {
	id := run + "-p" + strconv.Itoa(producer) + "-" + strconv.FormatInt(seq, 10) + "-"
	if len(id) >= size {
		return id
	}
	b := make([]byte, size)
	copy(b, id)
	for i := len(id); i < size; i++ {
		b[i] = byte('a' + rng.IntN(26))
	}
	return string(b)
}

// short is a value for examples: its id when it has one.
func short(v string) string {
	if id, ok := valueID(v); ok {
		return id
	}
	if len(v) > 40 {
		return strconv.Quote(v[:40]) + "..."
	}
	return strconv.Quote(v)
}
