package batchtest_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/storage/batch"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// decode reads b back with kmsg, splitting records by their length prefix.
func decode(t *testing.T, b []byte) (kmsg.RecordBatch, []kmsg.Record) {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	var out []kmsg.Record
	for rest := rb.Records; len(rest) > 0; {
		n, k := binary.Varint(rest)
		if k <= 0 || int(n)+k > len(rest) {
			t.Fatalf("bad record length at %d", len(rb.Records)-len(rest))
		}
		var r kmsg.Record
		if err := r.ReadFrom(rest[:k+int(n)]); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
		rest = rest[k+int(n):]
	}
	return rb, out
}

func TestBuild(t *testing.T) {
	s := batchtest.Spec{
		Values:          [][]byte{[]byte("a"), nil, bytes.Repeat([]byte("z"), 300)},
		Keys:            [][]byte{nil, []byte("key"), {}},
		Timestamp:       1_000,
		TimestampDeltas: []int64{5, -3, 9},
		ProducerID:      42, ProducerEpoch: 3, BaseSequence: 17, Attributes: 16,
	}
	b := batchtest.Build(s)
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	rb, recs := decode(t, b)
	if rb.Magic != 2 || rb.NumRecords != 3 || rb.LastOffsetDelta != 2 || rb.FirstTimestamp != 1_000 ||
		rb.MaxTimestamp != 1_009 || rb.ProducerID != 42 || rb.ProducerEpoch != 3 || rb.FirstSequence != 17 ||
		rb.Attributes != 16 || h.RecordCount != 3 || len(recs) != 3 {
		t.Fatalf("batch %+v, %d records", rb, len(recs))
	}
	for i, r := range recs {
		if r.OffsetDelta != int32(i) || r.TimestampDelta64 != s.TimestampDeltas[i] ||
			!bytes.Equal(r.Value, s.Values[i]) || (r.Value == nil) != (s.Values[i] == nil) ||
			!bytes.Equal(r.Key, s.Keys[i]) || (r.Key == nil) != (s.Keys[i] == nil) {
			t.Errorf("record %d: %+v", i, r)
		}
	}
}

func TestValuesAndRandom(t *testing.T) {
	for name, b := range map[string][]byte{
		"values": batchtest.Values(50, []byte("x"), []byte("y")),
		"random": batchtest.Random(rand.New(rand.NewPCG(1, 1)), 2, 64, 50),
	} {
		h, err := batch.Validate(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := batch.CheckProducerBatch(h); err != nil || h.Idempotent() || h.ProducerEpoch != -1 ||
			h.BaseSequence != -1 || h.BaseTimestamp != 50 || h.MaxTimestamp != 51 || h.Compression() != 0 {
			t.Errorf("%s: %+v (%v)", name, h, err)
		}
		if _, recs := decode(t, b); len(recs) != 2 || (name == "random" && len(recs[1].Value) != 64) {
			t.Errorf("%s: records %+v", name, recs)
		}
	}
}

func TestBuildPanicsOnMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for mismatched keys")
		}
	}()
	batchtest.Build(batchtest.Spec{Values: [][]byte{nil}, Keys: [][]byte{nil, nil}})
}
