package batch_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/storage/batch"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// recs returns n records with dense offset deltas.
func recs(n int) []byte {
	rs := make([]kmsg.Record, n)
	for i := range rs {
		rs[i] = kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i), Value: []byte{byte(i)}}
	}
	return batchtest.EncodeRecords(rs)
}

func TestParseHeaderRoundTrip(t *testing.T) {
	cases := []struct {
		name                                string
		rb                                  kmsg.RecordBatch
		codec                               int8
		logAppend, txn, control, idempotent bool
	}{
		{name: "plain", rb: kmsg.RecordBatch{FirstOffset: 0, PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: 2,
			FirstTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_002, ProducerID: -1, ProducerEpoch: -1,
			FirstSequence: -1, NumRecords: 3, Records: recs(3)}},
		{name: "idempotent-gzip", codec: 1, idempotent: true, rb: kmsg.RecordBatch{FirstOffset: 1<<40 + 7,
			PartitionLeaderEpoch: 12, Magic: 2, Attributes: 1, LastOffsetDelta: 0, FirstTimestamp: -1, MaxTimestamp: -1,
			ProducerID: 1 << 50, ProducerEpoch: 3, FirstSequence: 1 << 30, NumRecords: 1, Records: recs(1)}},
		{name: "txn-logappend-zstd", codec: 4, logAppend: true, txn: true, idempotent: true, rb: kmsg.RecordBatch{
			FirstOffset: 99, PartitionLeaderEpoch: 1<<31 - 1, Magic: 2, Attributes: 4 | 8 | 16, LastOffsetDelta: 4,
			FirstTimestamp: 5, MaxTimestamp: 9, ProducerID: 0, ProducerEpoch: 1<<15 - 1, FirstSequence: 0,
			NumRecords: 5, Records: recs(5)}},
		{name: "control-empty-records", control: true, txn: true, idempotent: true, rb: kmsg.RecordBatch{
			FirstOffset: 42, Magic: 2, Attributes: 16 | 32, LastOffsetDelta: 0, ProducerID: 8, NumRecords: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rb := c.rb
			b := batchtest.Encode(&rb)
			for name, parse := range map[string]func([]byte) (batch.Header, error){
				"ParseHeader": batch.ParseHeader, "Validate": batch.Validate,
			} {
				h, err := parse(b)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want := batch.Header{BaseOffset: rb.FirstOffset, BatchLength: rb.Length,
					PartitionLeaderEpoch: rb.PartitionLeaderEpoch, Magic: rb.Magic, CRC: uint32(rb.CRC),
					Attributes: rb.Attributes, LastOffsetDelta: rb.LastOffsetDelta, BaseTimestamp: rb.FirstTimestamp,
					MaxTimestamp: rb.MaxTimestamp, ProducerID: rb.ProducerID, ProducerEpoch: rb.ProducerEpoch,
					BaseSequence: rb.FirstSequence, RecordCount: rb.NumRecords}
				if h != want {
					t.Fatalf("%s:\n got %+v\nwant %+v", name, h, want)
				}
				if h.Size() != int64(len(b)) || h.LastOffset() != rb.FirstOffset+int64(rb.LastOffsetDelta) ||
					h.Compression() != c.codec || h.LogAppendTime() != c.logAppend || h.Transactional() != c.txn ||
					h.Control() != c.control || h.Idempotent() != c.idempotent {
					t.Fatalf("%s: accessors wrong for %+v", name, h)
				}
			}
			// ParseHeader needs only the header, not the records.
			if _, err := batch.ParseHeader(b[:batch.HeaderSize]); err != nil {
				t.Fatalf("ParseHeader(prefix): %v", err)
			}
		})
	}
}

// reCRC recomputes the checksum after a test edits a CRC-covered field.
func reCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestErrors(t *testing.T) {
	good := batchtest.Values(1000, []byte("a"), []byte("bb"), []byte("ccc"))
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	put32 := func(off int, v int32) []byte {
		return mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], uint32(v)); return b })
	}
	legacy := make([]byte, 26) // a magic-1 message is shorter than a v2 header
	legacy[16] = 1

	cases := []struct {
		name     string
		b        []byte
		parse    error // from ParseHeader
		validate error // from Validate
	}{
		{"empty", nil, batch.ErrTruncated, batch.ErrTruncated},
		{"16 bytes", good[:16], batch.ErrTruncated, batch.ErrTruncated},
		{"legacy magic", legacy, batch.ErrUnsupportedMagic, batch.ErrUnsupportedMagic},
		{"magic 3", mod(func(b []byte) []byte { b[16] = 3; return b }), batch.ErrUnsupportedMagic, batch.ErrUnsupportedMagic},
		{"60 bytes", good[:60], batch.ErrTruncated, batch.ErrTruncated},
		{"header only", good[:batch.HeaderSize], nil, batch.ErrTruncated},
		{"one short", good[:len(good)-1], nil, batch.ErrTruncated},
		{"trailing byte", append(bytes.Clone(good), 0), nil, batch.ErrCorrupt},
		{"two batches", append(bytes.Clone(good), good...), nil, batch.ErrCorrupt},
		{"batchLength 48", put32(8, 48), batch.ErrCorrupt, batch.ErrCorrupt},
		{"batchLength negative", put32(8, -1), batch.ErrCorrupt, batch.ErrCorrupt},
		{"batchLength too big", put32(8, int32(len(good))), nil, batch.ErrTruncated},
		{"lastOffsetDelta negative", reCRC(put32(23, -1)), batch.ErrCorrupt, batch.ErrCorrupt},
		{"crc flipped", mod(func(b []byte) []byte { b[17] ^= 1; return b }), nil, batch.ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := batch.ParseHeader(c.b); !errors.Is(err, c.parse) || (c.parse == nil) != (err == nil) {
				t.Errorf("ParseHeader = %v, want %v", err, c.parse)
			}
			if _, err := batch.Validate(c.b); !errors.Is(err, c.validate) {
				t.Errorf("Validate = %v, want %v", err, c.validate)
			}
		})
	}

	// The CRC must be CRC-32C; an IEEE checksum over the same bytes is corrupt.
	ieee := bytes.Clone(good)
	binary.BigEndian.PutUint32(ieee[17:], crc32.ChecksumIEEE(ieee[21:]))
	if _, err := batch.Validate(ieee); !errors.Is(err, batch.ErrCorrupt) {
		t.Errorf("Validate(IEEE crc) = %v, want ErrCorrupt", err)
	}
}

func TestCheckProducerBatch(t *testing.T) {
	v := [][]byte{[]byte("x"), []byte("y")}
	hdr := func(s batchtest.Spec, edit func(*batch.Header)) batch.Header {
		h, err := batch.Validate(batchtest.Build(s))
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(&h)
		}
		return h
	}
	plain := batchtest.Spec{Values: v, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	idem := batchtest.Spec{Values: v, ProducerID: 7, ProducerEpoch: 2, BaseSequence: 10}
	cases := []struct {
		name string
		h    batch.Header
		want error
	}{
		{"plain", hdr(plain, nil), nil},
		{"idempotent", hdr(idem, nil), nil},
		{"zero spec producer 0", hdr(batchtest.Spec{Values: v}, nil), nil},
		{"transactional", hdr(batchtest.Spec{Values: v, ProducerID: 7, Attributes: 16}, nil), nil},
		{"no producer, junk epoch", hdr(plain, func(h *batch.Header) { h.ProducerEpoch, h.BaseSequence = -5, -9 }), nil},
		{"no records", hdr(batchtest.Spec{ProducerID: -1}, nil), batch.ErrInvalidRecordCount},
		{"negative count", hdr(plain, func(h *batch.Header) { h.RecordCount = -1 }), batch.ErrInvalidRecordCount},
		{"sparse offsets", hdr(plain, func(h *batch.Header) { h.LastOffsetDelta = 5 }), batch.ErrInvalidRecordCount},
		{"delta short", hdr(plain, func(h *batch.Header) { h.LastOffsetDelta = 0 }), batch.ErrInvalidRecordCount},
		{"control", hdr(batchtest.Spec{Values: v, ProducerID: 7, Attributes: 16 | 32}, nil), batch.ErrControlBatch},
		{"negative sequence", hdr(batchtest.Spec{Values: v, ProducerID: 7, BaseSequence: -1}, nil), batch.ErrInvalidSequence},
		{"negative epoch", hdr(batchtest.Spec{Values: v, ProducerID: 7, ProducerEpoch: -1}, nil), batch.ErrInvalidSequence},
	}
	for _, c := range cases {
		err := batch.CheckProducerBatch(c.h)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: CheckProducerBatch = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestFlipEveryByte(t *testing.T) {
	good := batchtest.Build(batchtest.Spec{Values: [][]byte{[]byte("hello"), nil, []byte("world")},
		Keys: [][]byte{nil, []byte("k"), nil}, Timestamp: 5, ProducerID: 3, ProducerEpoch: 1, BaseSequence: 4})
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		_, err := batch.Validate(b)
		switch {
		case i < 8 || (i >= 12 && i < 16): // baseOffset, partitionLeaderEpoch: outside the CRC
			if err != nil {
				t.Errorf("byte %d: Validate = %v, want nil", i, err)
			}
		case i < 12: // batchLength: framing breaks
			if !errors.Is(err, batch.ErrTruncated) && !errors.Is(err, batch.ErrCorrupt) {
				t.Errorf("byte %d: Validate = %v, want ErrTruncated or ErrCorrupt", i, err)
			}
		case i == 16:
			if !errors.Is(err, batch.ErrUnsupportedMagic) {
				t.Errorf("byte %d: Validate = %v, want ErrUnsupportedMagic", i, err)
			}
		default:
			if !errors.Is(err, batch.ErrCorrupt) {
				t.Errorf("byte %d: Validate = %v, want ErrCorrupt", i, err)
			}
		}
	}
}

func TestSetters(t *testing.T) {
	b := batchtest.Values(10, []byte("a"), []byte("b"))
	batch.SetBaseOffset(b, 1<<42+3)
	batch.SetPartitionLeaderEpoch(b, 77)
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1<<42+3 || h.PartitionLeaderEpoch != 77 || h.LastOffset() != 1<<42+4 {
		t.Fatalf("got %+v", h)
	}
	for n := range 17 {
		short := bytes.Repeat([]byte{0xAA}, n)
		want := bytes.Clone(short)
		if n >= 8 {
			clear(want[:8])
		}
		if n >= 16 {
			clear(want[12:16])
		}
		batch.SetBaseOffset(short, 0)
		batch.SetPartitionLeaderEpoch(short, 0)
		if !bytes.Equal(short, want) {
			t.Errorf("len %d: got %x, want %x", n, short, want)
		}
	}
}

func TestIter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var region []byte
	var batches [][]byte
	for i := range 3 {
		b := batchtest.Random(r, 1+i*3, 10+i, int64(i*100))
		batch.SetBaseOffset(b, int64(i*1000))
		batches = append(batches, b)
		region = append(region, b...)
	}
	tail := batchtest.Random(r, 4, 50, 0)
	for _, cut := range []int{0, 1, 16, 17, 60, 61, 62, len(tail) - 1} {
		full := append(bytes.Clone(region), tail[:cut]...)
		it := batch.NewIter(full)
		pos := 0
		for i := 0; it.Next(); i++ {
			if i >= len(batches) {
				t.Fatalf("cut %d: extra batch at %d", cut, it.Offset())
			}
			if it.Offset() != pos || !bytes.Equal(it.Batch(), batches[i]) || it.Header().BaseOffset != int64(i*1000) {
				t.Fatalf("cut %d: batch %d at %d: offset %d, header %+v", cut, i, pos, it.Offset(), it.Header())
			}
			if _, err := batch.Validate(it.Batch()); err != nil {
				t.Fatalf("cut %d: batch %d: %v", cut, i, err)
			}
			pos += len(batches[i])
		}
		if pos != len(region) || it.Err() != nil || it.Partial() != (cut > 0) {
			t.Fatalf("cut %d: ended at %d of %d, err %v, partial %v", cut, pos, len(region), it.Err(), it.Partial())
		}
		if it.Next() || it.Batch() != nil {
			t.Fatalf("cut %d: Next after end returned a batch", cut)
		}
	}

	// Appending to one batch must not overwrite the next.
	it := batch.NewIter(region)
	it.Next()
	_ = append(it.Batch(), 0xFF)
	if !bytes.Equal(region[len(batches[0]):len(batches[0])+len(batches[1])], batches[1]) {
		t.Fatal("append to Batch() clobbered the next batch")
	}
}

func TestIterGarbage(t *testing.T) {
	good := batchtest.Values(0, []byte("v"))
	r := rand.New(rand.NewPCG(3, 4))
	garbage := make([]byte, 200)
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	garbage[16] = 0x7F
	badLen := bytes.Clone(good)
	binary.BigEndian.PutUint32(badLen[8:], 10)
	for name, c := range map[string]struct {
		b     []byte
		whole int
		want  error
	}{
		"garbage":              {garbage, 0, batch.ErrUnsupportedMagic},
		"good then garbage":    {append(bytes.Clone(good), garbage...), 1, batch.ErrUnsupportedMagic},
		"good then bad length": {append(bytes.Clone(good), badLen...), 1, batch.ErrCorrupt},
	} {
		it := batch.NewIter(c.b)
		n := 0
		for it.Next() {
			n++
		}
		if n != c.whole || !errors.Is(it.Err(), c.want) || it.Partial() {
			t.Errorf("%s: %d batches, err %v, partial %v", name, n, it.Err(), it.Partial())
		}
		if n == 1 && it.Offset() != len(good) {
			t.Errorf("%s: error reported at %d, want %d", name, it.Offset(), len(good))
		}
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	vals := make([][]byte, 5)
	for i := range vals {
		vals[i] = []byte{byte(i)}
	}
	// Record timestamps 1050, 1010, 1030, 1070, 1020 at offsets 100..104.
	spec := batchtest.Spec{Values: vals, Timestamp: 1000, TimestampDeltas: []int64{50, 10, 30, 70, 20}, ProducerID: -1}
	plain := batchtest.Build(spec)
	batch.SetBaseOffset(plain, 100)
	spec.Attributes = 3 // lz4 label on uncompressed bytes: must not be looked into
	lz4 := batchtest.Build(spec)
	batch.SetBaseOffset(lz4, 100)
	spec.Attributes = 8 // LogAppendTime
	lat := batchtest.Build(spec)
	batch.SetBaseOffset(lat, 100)

	// Compaction leaves sparse offset deltas; the answer is BaseOffset+offsetDelta, not the index.
	sparse := batchtest.Encode(&kmsg.RecordBatch{FirstOffset: 200, Magic: 2, LastOffsetDelta: 9,
		FirstTimestamp: 500, MaxTimestamp: 509, ProducerID: -1, NumRecords: 3,
		Records: batchtest.EncodeRecords([]kmsg.Record{
			{OffsetDelta: 2, TimestampDelta64: 2, Headers: []kmsg.Header{{Key: "h", Value: []byte("v")}}},
			{OffsetDelta: 5, TimestampDelta64: 5, Key: []byte("k")},
			{OffsetDelta: 9, TimestampDelta64: 9},
		})})

	cases := []struct {
		name   string
		b      []byte
		ts     int64
		offset int64
		ok     bool
	}{
		{"before all", plain, 0, 100, true},
		{"first record", plain, 1050, 100, true},
		{"skips earlier smaller", plain, 1051, 103, true},
		{"exact max", plain, 1070, 103, true},
		{"after max", plain, 1071, 0, false},
		{"lz4 below max", lz4, 1060, 100, true},
		{"lz4 exact max", lz4, 1070, 100, true},
		{"lz4 after max", lz4, 1071, 0, false},
		{"log append time", lat, 1070, 100, true},
		{"log append time after", lat, 1071, 0, false},
		{"sparse first", sparse, 0, 202, true},
		{"sparse middle", sparse, 503, 205, true},
		{"sparse last", sparse, 509, 209, true},
		{"sparse after", sparse, 510, 0, false},
	}
	for _, c := range cases {
		off, ok, err := batch.OffsetForTimestamp(c.b, c.ts)
		if err != nil || ok != c.ok || (ok && off != c.offset) {
			t.Errorf("%s: OffsetForTimestamp(%d) = %d, %v, %v; want %d, %v", c.name, c.ts, off, ok, err, c.offset, c.ok)
		}
	}

	corrupt := func(f func(b []byte)) []byte { b := bytes.Clone(plain); f(b); return b }
	for name, b := range map[string][]byte{
		"record length too long": corrupt(func(b []byte) { b[batch.HeaderSize] = 0x7E }),
		"record length negative": corrupt(func(b []byte) { b[batch.HeaderSize] = 0x03 }),
		"too few records":        corrupt(func(b []byte) { binary.BigEndian.PutUint32(b[57:], 6) }),
		"negative count":         corrupt(func(b []byte) { binary.BigEndian.PutUint32(b[57:], 0xFFFFFFFF) }),
		"offset beyond last":     corrupt(func(b []byte) { binary.BigEndian.PutUint32(b[23:], 2) }),
		"unterminated varint": corrupt(func(b []byte) {
			for i := batch.HeaderSize; i < len(b); i++ {
				b[i] = 0xFF
			}
		}),
		"value overruns record": corrupt(func(b []byte) { b[batch.HeaderSize+5] = 0x04 }),
		"key length -2":         corrupt(func(b []byte) { b[batch.HeaderSize+4] = 0x03 }),
		"record longer than fields": func() []byte {
			rs := batchtest.EncodeRecords([]kmsg.Record{{Value: []byte("x")}})
			rs[0] += 2 // one more byte than the fields use, supplied below
			return batchtest.Encode(&kmsg.RecordBatch{Magic: 2, ProducerID: -1, NumRecords: 1, Records: append(rs, 0)})
		}(),
	} {
		if _, _, err := batch.OffsetForTimestamp(b, 1071); !errors.Is(err, batch.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	if _, _, err := batch.OffsetForTimestamp(plain[:len(plain)-1], 0); !errors.Is(err, batch.ErrTruncated) {
		t.Errorf("truncated: err = %v, want ErrTruncated", err)
	}
}

func FuzzParse(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	one := batchtest.Values(1000, []byte("a"), nil, []byte("ccc"))
	f.Add(one, int64(1001))
	f.Add(batchtest.Random(r, 8, 20, 0), int64(3))
	f.Add(append(bytes.Clone(one), batchtest.Random(r, 2, 5, 7)[:40]...), int64(0))
	f.Add(batchtest.Build(batchtest.Spec{Values: [][]byte{[]byte("x")}, Keys: [][]byte{[]byte("k")},
		TimestampDeltas: []int64{-5}, Attributes: 2, ProducerID: 4}), int64(-10))
	f.Add(one[:30], int64(0))
	f.Fuzz(func(t *testing.T, b []byte, ts int64) {
		h, perr := batch.ParseHeader(b)
		vh, verr := batch.Validate(b)
		if verr == nil && (perr != nil || vh != h || vh.Size() != int64(len(b))) {
			t.Fatalf("Validate ok but ParseHeader %v / %+v vs %+v", perr, h, vh)
		}
		_ = batch.CheckProducerBatch(h)
		if _, _, err := batch.OffsetForTimestamp(b, ts); err != nil && perr == nil && int64(len(b)) >= h.Size() &&
			!errors.Is(err, batch.ErrCorrupt) {
			t.Fatalf("OffsetForTimestamp error %v is not ErrCorrupt", err)
		}
		it := batch.NewIter(b)
		total := 0
		for it.Next() {
			if it.Offset() != total || int64(len(it.Batch())) != it.Header().Size() {
				t.Fatalf("batch at %d (expected %d), len %d vs size %d", it.Offset(), total, len(it.Batch()), it.Header().Size())
			}
			total += len(it.Batch())
		}
		if total > len(b) || (it.Err() != nil && it.Partial()) {
			t.Fatalf("iter consumed %d of %d, err %v, partial %v", total, len(b), it.Err(), it.Partial())
		}
		if verr == nil && (total != len(b) || it.Err() != nil || it.Partial()) {
			t.Fatalf("valid batch not iterated whole: %d of %d", total, len(b))
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	var data []byte
	for size := 1000; len(data) < 16<<10; size++ {
		data = batchtest.Random(r, 16, size, 0)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := batch.Validate(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBuildAndRecordsRoundTrip(t *testing.T) {
	in := []batch.Record{
		{Timestamp: 1000, Key: []byte("k1"), Value: []byte("v1")},
		{Timestamp: 1005, Key: []byte("k2"), Value: nil}, // tombstone
		{Timestamp: 999, Key: nil, Value: []byte("v3")},
	}
	b := batch.Build(in)
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.CheckProducerBatch(h); err != nil || h.MaxTimestamp != 1005 || h.Idempotent() {
		t.Fatalf("header %+v: %v", h, err)
	}
	batch.SetBaseOffset(b, 40)
	out, err := batch.Records(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("%d records", len(out))
	}
	for i, r := range out {
		if r.Offset != int64(40+i) || r.Timestamp != in[i].Timestamp || string(r.Key) != string(in[i].Key) ||
			string(r.Value) != string(in[i].Value) || (r.Value == nil) != (in[i].Value == nil) {
			t.Fatalf("record %d: %+v, want %+v at offset %d", i, r, in[i], 40+i)
		}
	}
	if _, err := batch.Records(b[:len(b)-1]); err == nil {
		t.Fatal("a cut batch decoded")
	}
}
