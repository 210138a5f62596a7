package batch

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// compressedBatch encodes keyed records (key i%3, value i) as one batch
// compressed with codec.
func compressedBatch(t *testing.T, codec int8, n int, xerial bool) []byte {
	t.Helper()
	recs := make([]kmsg.Record, n)
	for i := range recs {
		recs[i] = kmsg.Record{OffsetDelta: int32(i), Key: fmt.Appendf(nil, "k%d", i%3), Value: fmt.Appendf(nil, "v%d", i)}
	}
	recs[n-1].Value = nil // a tombstone
	raw := EncodeRecords(recs)
	var data []byte
	switch codec {
	case codecNone:
		data = raw
	case codecGzip:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(raw)
		w.Close()
		data = buf.Bytes()
	case codecSnappy:
		data = s2.EncodeSnappy(nil, raw)
		if xerial {
			framed := append(append([]byte{}, xerialMagic...), 0, 0, 0, 1, 0, 0, 0, 1)
			framed = binary.BigEndian.AppendUint32(framed, uint32(len(data)))
			data = append(framed, data...)
		}
	case codecLZ4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		w.Write(raw)
		w.Close()
		data = buf.Bytes()
	case codecZstd:
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		data = enc.EncodeAll(raw, nil)
	}
	rb := kmsg.RecordBatch{FirstOffset: 100, Magic: 2, Attributes: int16(codec), LastOffsetDelta: int32(n - 1),
		ProducerID: 7, ProducerEpoch: 1, FirstSequence: 0, NumRecords: int32(n), Records: data}
	return EncodeBatch(&rb)
}

func TestFilterEveryCodec(t *testing.T) {
	for _, tc := range []struct {
		name   string
		codec  int8
		xerial bool
	}{{"none", codecNone, false}, {"gzip", codecGzip, false}, {"snappy", codecSnappy, false},
		{"snappy-xerial", codecSnappy, true}, {"lz4", codecLZ4, false}, {"zstd", codecZstd, false}} {
		t.Run(tc.name, func(t *testing.T) {
			b := compressedBatch(t, tc.codec, 10, tc.xerial)
			var seen []KeyedRecord
			if err := EachRecord(b, func(r KeyedRecord) { seen = append(seen, r) }); err != nil {
				t.Fatal(err)
			}
			if len(seen) != 10 || seen[4].Offset != 104 || string(seen[4].Key) != "k1" || !seen[9].Tombstone || seen[8].Tombstone {
				t.Fatalf("records: %+v", seen)
			}
			// Keep offsets 101 and 109 (the tombstone).
			out, kept, err := Filter(b, func(r KeyedRecord) bool { return r.Offset == 101 || r.Offset == 109 })
			if err != nil || kept != 2 {
				t.Fatalf("filter: kept %d, %v", kept, err)
			}
			h, err := Validate(out)
			if err != nil {
				t.Fatal(err)
			}
			in, _ := ParseHeader(b)
			if h.Compression() != 0 || h.BaseOffset != 100 || h.LastOffsetDelta != 9 || h.RecordCount != 2 ||
				h.ProducerID != in.ProducerID || h.BaseSequence != in.BaseSequence || h.MaxTimestamp != in.MaxTimestamp {
				t.Fatalf("filtered header %+v from %+v", h, in)
			}
			recs, err := Records(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 || recs[0].Offset != 101 || string(recs[0].Value) != "v1" || recs[1].Offset != 109 || recs[1].Value != nil {
				t.Fatalf("filtered records: %+v", recs)
			}
		})
	}
}

func TestFilterBadInput(t *testing.T) {
	b := compressedBatch(t, codecZstd, 5, false)
	b[len(b)-3] ^= 0xff // damage the compressed bytes (the CRC is not checked here)
	if _, _, err := Filter(b, func(KeyedRecord) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged zstd: %v, want ErrCorrupt", err)
	}
	b = compressedBatch(t, codecNone, 5, false)
	binary.BigEndian.PutUint32(b[offRecordCount:], 6) // claims one record more than it holds
	if err := EachRecord(b, func(KeyedRecord) {}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short records: %v, want ErrCorrupt", err)
	}
	b = compressedBatch(t, codecGzip, 5, false)
	b[offAttributes+1] |= 7 // codec 7 does not exist
	if err := EachRecord(b, func(KeyedRecord) {}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown codec: %v, want ErrCorrupt", err)
	}
}
