// Package batchtest builds real v2 record batches for tests. Encoding goes
// through franz-go's kmsg types rather than hand-written bytes so that tests
// of package batch are checked against an independent encoder.
package batchtest

import (
	"fmt"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/storage/batch"
)

// NoProducer is the producer id, epoch and sequence of a non-idempotent
// producer.
const NoProducer = -1

// Spec describes a batch for Build. Producer fields are taken literally:
// producer id 0 is a real id, so the zero Spec describes an idempotent batch
// from producer 0, epoch 0, sequence 0. Set ProducerID (and usually
// ProducerEpoch and BaseSequence) to NoProducer for a plain batch, or use
// Values.
type Spec struct {
	Values [][]byte // one record per value
	Keys   [][]byte // optional; same length as Values when set

	// Timestamp is the batch's base timestamp in ms. Record i gets
	// Timestamp+TimestampDeltas[i] when TimestampDeltas is set, else
	// Timestamp+i.
	Timestamp       int64
	TimestampDeltas []int64

	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32

	// Attributes is written as given. Build never compresses, so codec bits
	// only label the bytes; package batch never looks past the label.
	Attributes int16
}

// Encode serializes rb after filling in its Length and CRC from the other
// fields, so callers can build unusual batches (say, with sparse offset
// deltas) and still get a valid one.
func Encode(rb *kmsg.RecordBatch) []byte { return batch.EncodeBatch(rb) }

// EncodeRecords serializes records after filling in each record's Length,
// which kmsg leaves to the caller.
func EncodeRecords(recs []kmsg.Record) []byte { return batch.EncodeRecords(recs) }

// Build encodes s as a single valid batch with base offset 0. It panics on
// an inconsistent Spec, which is a bug in the calling test.
func Build(s Spec) []byte {
	n := len(s.Values)
	if s.Keys != nil && len(s.Keys) != n {
		panic(fmt.Sprintf("batchtest: %d keys for %d values", len(s.Keys), n))
	}
	if s.TimestampDeltas != nil && len(s.TimestampDeltas) != n {
		panic(fmt.Sprintf("batchtest: %d timestamp deltas for %d values", len(s.TimestampDeltas), n))
	}
	recs := make([]kmsg.Record, n)
	var maxDelta int64
	for i := range recs {
		d := int64(i)
		if s.TimestampDeltas != nil {
			d = s.TimestampDeltas[i]
		}
		if i == 0 || d > maxDelta {
			maxDelta = d
		}
		recs[i] = kmsg.Record{TimestampDelta64: d, OffsetDelta: int32(i), Value: s.Values[i]}
		if s.Keys != nil {
			recs[i].Key = s.Keys[i]
		}
	}
	rb := kmsg.RecordBatch{
		Magic:           2,
		Attributes:      s.Attributes,
		LastOffsetDelta: int32(max(n-1, 0)),
		FirstTimestamp:  s.Timestamp,
		MaxTimestamp:    s.Timestamp + maxDelta,
		ProducerID:      s.ProducerID,
		ProducerEpoch:   s.ProducerEpoch,
		FirstSequence:   s.BaseSequence,
		NumRecords:      int32(n),
		Records:         EncodeRecords(recs),
	}
	b := Encode(&rb)
	if _, err := batch.Validate(b); err != nil {
		panic("batchtest: built an invalid batch: " + err.Error())
	}
	return b
}

// Values builds a plain (non-idempotent, uncompressed) batch with one record
// per value and timestamps ts, ts+1, ...
func Values(ts int64, values ...[]byte) []byte {
	return Build(Spec{
		Values:        values,
		Timestamp:     ts,
		ProducerID:    NoProducer,
		ProducerEpoch: NoProducer,
		BaseSequence:  NoProducer,
	})
}

// Random builds a plain batch of records random values of valueSize bytes.
func Random(r *rand.Rand, records, valueSize int, ts int64) []byte {
	values := make([][]byte, records)
	for i := range values {
		v := make([]byte, valueSize)
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		values[i] = v
	}
	return Values(ts, values...)
}
