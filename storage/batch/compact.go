package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// KeyedRecord is what log compaction needs to know of one record.
type KeyedRecord struct {
	Offset    int64
	Key       []byte // nil when the record has no key
	Tombstone bool   // the value is null
}

// EachRecord calls fn for every record of one whole batch, in order,
// decompressing a compressed one.
func EachRecord(b []byte, fn func(KeyedRecord)) error {
	_, err := walkRecords(b, func(r KeyedRecord, _ []byte) { fn(r) })
	return err
}

// Filter returns a copy of batch b holding only the records keep selects,
// uncompressed, with recordCount, batchLength, the compression bits and the
// CRC made to match. Every other header field is kept, lastOffsetDelta included, so the
// batch still spans its original offsets (a compacted batch's offsets have
// gaps, as in Kafka). kept may be 0: the batch is then an empty one, which
// Kafka keeps to preserve a producer's last sequence.
func Filter(b []byte, keep func(KeyedRecord) bool) (out []byte, kept int32, err error) {
	out = make([]byte, HeaderSize, len(b))
	copy(out, b[:HeaderSize:HeaderSize])
	_, err = walkRecords(b, func(r KeyedRecord, raw []byte) {
		if keep(r) {
			out = append(out, raw...)
			kept++
		}
	})
	if err != nil {
		return nil, 0, err
	}
	out[offAttributes+1] &^= attrCompressionMask // attributes is an int16: its low byte
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-LengthPrefixSize))
	binary.BigEndian.PutUint32(out[offRecordCount:], uint32(kept))
	binary.BigEndian.PutUint32(out[offCRC:], crc32.Checksum(out[crcStart:], castagnoli))
	return out, kept, nil
}

// walkRecords decodes the records of b far enough to know each one's
// offset, key and whether its value is null, and hands fn the record's raw
// bytes (length prefix included).
func walkRecords(b []byte, fn func(KeyedRecord, []byte)) (int32, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return 0, err
	}
	if int64(len(b)) < h.Size() || h.RecordCount < 0 {
		return 0, fmt.Errorf("%w: batch of %d bytes, %d records", ErrCorrupt, len(b), h.RecordCount)
	}
	rest, err := decompress(h.Compression(), b[HeaderSize:h.Size()])
	if err != nil {
		return 0, err
	}
	for i := int32(0); i < h.RecordCount; i++ {
		r := recordReader{b: rest}
		n := r.length(false)
		if r.err != nil || n == 0 {
			return 0, fmt.Errorf("%w: record %d length", ErrCorrupt, i)
		}
		rawLen := len(rest) - len(r.b) + n
		body := recordReader{b: r.b[:n]}
		body.b = body.b[1:] // attributes
		body.varint()       // timestamp delta
		offDelta := body.varint()
		keyLen := body.varint()
		var key []byte
		if body.err == nil && keyLen >= 0 {
			if keyLen > int64(len(body.b)) {
				body.err = errBadLength
			} else {
				key, body.b = body.b[:keyLen], body.b[keyLen:]
			}
		}
		valueLen := body.varint()
		if body.err != nil || offDelta < 0 || offDelta > int64(h.LastOffsetDelta) || keyLen < -1 || valueLen < -1 {
			return 0, fmt.Errorf("%w: record %d malformed", ErrCorrupt, i)
		}
		fn(KeyedRecord{Offset: h.BaseOffset + offDelta, Key: key, Tombstone: valueLen == -1}, rest[:rawLen])
		rest = rest[rawLen:]
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(rest))
	}
	return h.RecordCount, nil
}
