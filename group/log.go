package group

import (
	"context"

	"github.com/mlog/mlog/storage/batch"
)

// OffsetsTopic is the internal topic holding committed offsets and group
// metadata.
const OffsetsTopic = "__consumer_offsets"

// Log is one __consumer_offsets partition as the coordinator uses it.
type Log interface {
	// Commit appends records and returns once they are committed (acks=all).
	Commit(ctx context.Context, recs []batch.Record) error
	// CommitTxn appends records as part of a producer's transaction (a
	// transactional batch of its id and epoch), acks=all.
	CommitTxn(ctx context.Context, recs []batch.Record, producerID int64, producerEpoch int16) error
	// Replay calls fn with every record from the start of the log, with
	// the header of its batch (a control batch's record is its marker).
	Replay(fn func(batch.Header, batch.Record) error) error
}

// PartitionFor maps a group to its offsets partition as Kafka does:
// abs(String.hashCode()) % n, with Java's hash of the UTF-16 code units.
func PartitionFor(group string, n int) int32 {
	var h int32
	for _, r := range group {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xd800+(r>>10))
			h = 31*h + int32(0xdc00+(r&0x3ff))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -1<<31 {
		return 0 // Kafka's Utils.abs maps MinInt to 0
	}
	if h < 0 {
		h = -h
	}
	return h % int32(n)
}
