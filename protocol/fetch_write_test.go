package protocol

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// The hand-written Fetch framing must be byte for byte what kmsg encodes for
// the same response, at every version served.
func TestFetchFramingMatchesKmsg(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	l, err := storage.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 3 {
		if _, err := l.Append(batchtest.Values(int64(1000+i), []byte("a"), []byte("bb")), 0); err != nil {
			t.Fatal(err)
		}
	}
	for v := int16(4); v <= 12; v++ {
		reg, err := l.Read(0, 1<<20, -1)
		if err != nil {
			t.Fatal(err)
		}
		records, err := reg.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		fr := &fetchReply{version: v, sessionID: 1234567, topics: []fetchTopic{
			{name: "orders", partitions: []fetchPartition{
				{id: 0, highWatermark: 6, lastStableOffset: 6, logStartOffset: 0, records: reg},
				{id: 1, errorCode: 1, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1},
			}},
			{name: "empty", partitions: []fetchPartition{{id: 3, highWatermark: 9, lastStableOffset: 9, logStartOffset: 2}}},
			{name: "txn", partitions: []fetchPartition{{id: 0, highWatermark: 9, lastStableOffset: 4, logStartOffset: 0,
				aborted: []partition.AbortedTxn{{ProducerID: 7, FirstOffset: 1, LastOffset: 3}, {ProducerID: 8, FirstOffset: 2, LastOffset: 5}}}}},
		}}
		if v >= 11 {
			fr.topics[1].partitions = append(fr.topics[1].partitions, fetchPartition{id: 5, highWatermark: 9, lastStableOffset: 9, logStartOffset: 2,
				preferred: true, preferredReplica: 3})
		}
		if v >= 12 {
			fr.topics[1].partitions = append(fr.topics[1].partitions, fetchPartition{id: 4, highWatermark: 9, lastStableOffset: 9, logStartOffset: 2,
				diverging: true, divergingEpoch: 3, divergingEndOffset: 7})
		}
		frame := fr.encode(nil, 42)
		var got []byte
		for i, run := range frame.runs {
			got = append(got, run...)
			if i < len(frame.regions) {
				b, err := frame.regions[i].Bytes()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, b...)
			}
		}
		fr.release()

		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		if v >= 7 {
			resp.SessionID = 1234567
		}
		part := func(id int32, code int16, hw, lso, lss int64, recs []byte) kmsg.FetchResponseTopicPartition {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition, p.ErrorCode, p.HighWatermark, p.LastStableOffset, p.LogStartOffset = id, code, hw, lso, lss
			p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			p.PreferredReadReplica = -1
			p.RecordBatches = recs
			return p
		}
		resp.Topics = []kmsg.FetchResponseTopic{
			{Topic: "orders", Partitions: []kmsg.FetchResponseTopicPartition{part(0, 0, 6, 6, 0, records), part(1, 1, -1, -1, -1, []byte{})}},
			{Topic: "empty", Partitions: []kmsg.FetchResponseTopicPartition{part(3, 0, 9, 9, 2, []byte{})}},
			{Topic: "txn", Partitions: []kmsg.FetchResponseTopicPartition{part(0, 0, 9, 4, 0, []byte{})}},
		}
		resp.Topics[2].Partitions[0].AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{
			{ProducerID: 7, FirstOffset: 1}, {ProducerID: 8, FirstOffset: 2}}
		if v >= 11 {
			pr := part(5, 0, 9, 9, 2, []byte{})
			pr.PreferredReadReplica = 3
			resp.Topics[1].Partitions = append(resp.Topics[1].Partitions, pr)
		}
		if v >= 12 {
			d := part(4, 0, 9, 9, 2, []byte{})
			d.DivergingEpoch.Epoch, d.DivergingEpoch.EndOffset = 3, 7
			resp.Topics[1].Partitions = append(resp.Topics[1].Partitions, d)
		}
		want := appendResponseHeader(make([]byte, 4), 42, resp.IsFlexible(), 1)
		want = resp.AppendTo(want)
		binary.BigEndian.PutUint32(want, uint32(len(want)-4))
		if !bytes.Equal(got, want) {
			t.Fatalf("v%d: framing differs from kmsg\n got %x\nwant %x", v, got, want)
		}
	}
}
