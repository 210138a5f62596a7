package batch

import "testing"

// A marker built here is a valid control batch whose type reads back, in
// the layout Kafka's clients parse (key version 0 and type, value version 0
// and coordinator epoch).
func TestMarkers(t *testing.T) {
	for _, commit := range []bool{false, true} {
		b := BuildMarker(42, 3, commit, 7, 1000)
		h, err := Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Control() || !h.Transactional() || h.ProducerID != 42 || h.ProducerEpoch != 3 || h.RecordCount != 1 {
			t.Fatalf("header %+v", h)
		}
		typ, err := MarkerType(b)
		want := MarkerAbort
		if commit {
			want = MarkerCommit
		}
		if err != nil || typ != want {
			t.Fatalf("MarkerType = %d, %v; want %d", typ, err, want)
		}
		recs, _ := Records(b)
		if v := recs[0].Value; len(v) != 6 || v[0] != 0 || v[1] != 0 || v[5] != 7 {
			t.Fatalf("marker value %x, want version 0 and coordinator epoch 7", v)
		}
		if CheckProducerBatch(h) == nil {
			t.Fatal("a producer may not send a control batch")
		}
	}
}
