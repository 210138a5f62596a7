package batch

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Control batches (KIP-98): written by the broker, never by producers,
// with the transactional and control attributes set and one record whose
// key is (version int16 = 0, type int16) and, for transaction markers,
// whose value is (version int16 = 0, coordinator epoch int32).
const (
	// MarkerAbort and MarkerCommit are the control record types that end
	// a transaction.
	MarkerAbort  int16 = 0
	MarkerCommit int16 = 1
)

// BuildMarker encodes a transaction marker for a producer's open
// transaction: commit or abort, as the coordinator of epoch
// coordinatorEpoch decided, at base offset 0 (the log assigns it).
func BuildMarker(producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32, timestamp int64) []byte {
	typ := MarkerAbort
	if commit {
		typ = MarkerCommit
	}
	key := binary.BigEndian.AppendUint16(make([]byte, 2, 4), uint16(typ))
	value := binary.BigEndian.AppendUint32(make([]byte, 2, 6), uint32(coordinatorEpoch))
	recs := []kmsg.Record{{Key: key, Value: value}}
	rb := kmsg.RecordBatch{Magic: 2, Attributes: attrTransactional | attrControl, FirstTimestamp: timestamp, MaxTimestamp: timestamp,
		ProducerID: producerID, ProducerEpoch: producerEpoch, FirstSequence: -1, NumRecords: 1, Records: EncodeRecords(recs)}
	return EncodeBatch(&rb)
}

// MarkerType reads the control record type of a whole control batch.
func MarkerType(b []byte) (int16, error) {
	recs, err := Records(b)
	if err != nil {
		return 0, err
	}
	if len(recs) != 1 || len(recs[0].Key) < 4 {
		return 0, fmt.Errorf("%w: control batch without a control record key", ErrCorrupt)
	}
	return int16(binary.BigEndian.Uint16(recs[0].Key[2:4])), nil
}
