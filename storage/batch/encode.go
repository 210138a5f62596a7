package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record for Build and from Records.
type Record struct {
	Offset    int64 // absolute, filled by Records
	Timestamp int64 // ms
	Key       []byte
	Value     []byte // nil is a tombstone
}

// EncodeBatch serializes rb after filling in its Length and CRC from the
// other fields.
func EncodeBatch(rb *kmsg.RecordBatch) []byte {
	rb.Length = int32(HeaderSize - LengthPrefixSize + len(rb.Records))
	b := rb.AppendTo(nil)
	rb.CRC = int32(crc32.Checksum(b[crcStart:], castagnoli))
	binary.BigEndian.PutUint32(b[offCRC:], uint32(rb.CRC))
	return b
}

// EncodeRecords serializes records after filling in each record's Length,
// which kmsg leaves to the caller.
func EncodeRecords(recs []kmsg.Record) []byte {
	var out, scratch []byte
	for i := range recs {
		recs[i].Length = 0
		scratch = recs[i].AppendTo(scratch[:0])
		recs[i].Length = int32(len(scratch) - 1) // a zero varint is one byte
		out = recs[i].AppendTo(out)
	}
	return out
}

// Build encodes records as one uncompressed, non-idempotent batch at base
// offset 0: what the broker writes itself (committed offsets).
func Build(records []Record) []byte {
	if len(records) == 0 {
		return nil
	}
	base := records[0].Timestamp
	maxTs := base
	recs := make([]kmsg.Record, len(records))
	for i, r := range records {
		maxTs = max(maxTs, r.Timestamp)
		recs[i] = kmsg.Record{TimestampDelta64: r.Timestamp - base, OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
	}
	rb := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: int32(len(records) - 1), FirstTimestamp: base, MaxTimestamp: maxTs,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(records)), Records: EncodeRecords(recs)}
	return EncodeBatch(&rb)
}

// BuildTxn encodes records as one uncompressed transactional batch of a
// producer, without a sequence: what a coordinator writes on a
// transactional producer's behalf (TxnOffsetCommit).
func BuildTxn(records []Record, producerID int64, producerEpoch int16) []byte {
	b := Build(records)
	if b == nil {
		return nil
	}
	rb := kmsg.RecordBatch{}
	if err := rb.ReadFrom(b); err != nil {
		return nil
	}
	rb.Attributes |= attrTransactional
	rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence = producerID, producerEpoch, -1
	return EncodeBatch(&rb)
}

// Records decodes the records of one whole uncompressed batch.
func Records(b []byte) ([]Record, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Compression() != 0 {
		return nil, fmt.Errorf("%w: compressed batch (codec %d)", ErrCorrupt, h.Compression())
	}
	if int64(len(b)) < h.Size() {
		return nil, fmt.Errorf("%w: %d bytes, batch needs %d", ErrTruncated, len(b), h.Size())
	}
	rest := b[HeaderSize:h.Size()]
	out := make([]Record, 0, max(h.RecordCount, 0))
	for range h.RecordCount {
		n, m := binary.Varint(rest)
		if m <= 0 || n < 0 || int64(len(rest)-m) < n {
			return nil, fmt.Errorf("%w: record length", ErrCorrupt)
		}
		var r kmsg.Record
		if err := r.ReadFrom(rest[:m+int(n)]); err != nil {
			return nil, fmt.Errorf("%w: record: %w", ErrCorrupt, err)
		}
		rest = rest[m+int(n):]
		out = append(out, Record{Offset: h.BaseOffset + int64(r.OffsetDelta), Timestamp: h.BaseTimestamp + r.TimestampDelta64, Key: r.Key, Value: r.Value})
	}
	return out, nil
}
