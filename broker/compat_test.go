package broker_test

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/storage/batch"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// Old clients (kafka-python, kafka-go, librdkafka) send old versions: pin
// them with hand-framed requests and check the answers.
func TestOldVersions(t *testing.T) {
	_, b := startOne(t)
	c := dialRaw(t, b)

	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 0
	avr := c.send(av).(*kmsg.ApiVersionsResponse)
	if avr.ErrorCode != 0 || len(avr.ApiKeys) == 0 {
		t.Fatalf("ApiVersions v0: error %d, %d keys", avr.ErrorCode, len(avr.ApiKeys))
	}
	ranges := map[int16][2]int16{}
	for _, k := range avr.ApiKeys {
		ranges[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	for key, want := range map[int16][2]int16{0: {3, 9}, 1: {4, 12}, 2: {0, 7}, 3: {0, 12}, 8: {0, 8}, 9: {0, 8}, 10: {0, 4},
		11: {0, 9}, 12: {0, 4}, 13: {0, 5}, 14: {0, 5}, 15: {0, 5}, 16: {0, 4}, 18: {0, 3}, 19: {0, 7}, 20: {0, 6}, 22: {0, 4},
		24: {0, 3}, 25: {0, 3}, 26: {0, 3}, 27: {0, 1}, 29: {0, 3}, 30: {0, 3}, 31: {0, 3},
		32: {0, 4}, 37: {0, 3}, 42: {0, 2}, 47: {0, 0}} {
		if ranges[key] != want {
			t.Errorf("%s advertised %v, want %v", kmsg.NameForKey(key), ranges[key], want)
		}
	}

	// Metadata v0 with an unknown topic auto-creates it (v0-v3 always may).
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 0
	name := "old"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
	mdr := c.send(md).(*kmsg.MetadataResponse)
	if len(mdr.Brokers) != 1 || len(mdr.Topics) != 1 || mdr.Topics[0].ErrorCode != 0 || len(mdr.Topics[0].Partitions) != 1 {
		t.Fatalf("Metadata v0: %+v", mdr)
	}
	// Metadata v1 with null topics lists them all, and names the controller.
	md1 := kmsg.NewPtrMetadataRequest()
	md1.Version = 1
	md1r := c.send(md1).(*kmsg.MetadataResponse)
	if md1r.ControllerID != 1 || len(md1r.Topics) != 1 || *md1r.Topics[0].Topic != "old" {
		t.Fatalf("Metadata v1: controller %d topics %d", md1r.ControllerID, len(md1r.Topics))
	}

	// Produce v3, once this broker leads the topic it just made.
	waitLeading(t, b, "old")
	records := batchtest.Values(1_700_000_000_000, []byte("a"), []byte("b"), []byte("c"))
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks, pr.TimeoutMillis = 3, -1, 5000
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "old", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: records}}}}
	prr := c.send(pr).(*kmsg.ProduceResponse)
	if p := prr.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("Produce v3: error %d base %d", p.ErrorCode, p.BaseOffset)
	}

	// Fetch v4 returns the batch byte for byte (offsets and the leader
	// epoch as assigned).
	stored := slices.Clone(records)
	batch.SetPartitionLeaderEpoch(stored, broker.Replica(b, "old", 0).LeaderEpoch())
	fr := kmsg.NewPtrFetchRequest()
	fr.Version, fr.ReplicaID, fr.MaxBytes, fr.MinBytes = 4, -1, 1<<20, 1
	fr.Topics = []kmsg.FetchRequestTopic{{Topic: "old", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1, FetchOffset: 0, PartitionMaxBytes: 1 << 20}}}}
	frr := c.send(fr).(*kmsg.FetchResponse)
	fp := frr.Topics[0].Partitions[0]
	if fp.ErrorCode != 0 || fp.HighWatermark != 3 || string(fp.RecordBatches) != string(stored) {
		t.Fatalf("Fetch v4: error %d hw %d, %d bytes (want %d)", fp.ErrorCode, fp.HighWatermark, len(fp.RecordBatches), len(stored))
	}

	// ListOffsets v0 (old-style list) and v1.
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version, lo.ReplicaID = 0, -1
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "old", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, Timestamp: -1, MaxNumOffsets: 1}}}}
	lor := c.send(lo).(*kmsg.ListOffsetsResponse)
	if p := lor.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.OldStyleOffsets) != 1 || p.OldStyleOffsets[0] != 3 {
		t.Fatalf("ListOffsets v0: %+v", p)
	}
	lo.Version = 1
	lo.Topics[0].Partitions[0].Timestamp = -2
	lor = c.send(lo).(*kmsg.ListOffsetsResponse)
	if p := lor.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 0 {
		t.Fatalf("ListOffsets v1 earliest: %+v", p)
	}

	// An ApiVersions version we do not know gets a v0 answer with the ranges.
	raw := c.sendRaw(18, 9, nil)
	var v0 kmsg.ApiVersionsResponse
	v0.Version = 0
	if err := v0.ReadFrom(raw); err != nil || v0.ErrorCode != kerr.UnsupportedVersion.Code || len(v0.ApiKeys) == 0 {
		t.Fatalf("ApiVersions v9: %v code %d keys %d", err, v0.ErrorCode, len(v0.ApiKeys))
	}
}

// Bad input gets an error code or a closed connection, and the broker
// keeps serving others.
func TestBadInputKeepsServing(t *testing.T) {
	_, b := startOne(t)
	good := dialRaw(t, b)
	ping := func() {
		t.Helper()
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		if r := good.send(req).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
			t.Fatalf("healthy client got error %d", r.ErrorCode)
		}
	}
	ping()
	closes := map[string][]byte{
		"negative size":           {0xff, 0xff, 0xff, 0xf0},
		"size over the max":       binary.BigEndian.AppendUint32(nil, 200<<20),
		"header cut short":        {0, 0, 0, 3, 0, 18, 0},
		"garbage after header":    append(binary.BigEndian.AppendUint32(nil, 14), 0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef),
		"unknown api key":         append(binary.BigEndian.AppendUint32(nil, 10), 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff),
		"unsupported produce v0":  append(binary.BigEndian.AppendUint32(nil, 10), 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff),
		"frame shorter than said": append(binary.BigEndian.AppendUint32(nil, 100), 0, 18, 0, 0),
	}
	for name, bytes := range closes {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, b)
			if _, err := c.nc.Write(bytes); err != nil {
				t.Fatal(err)
			}
			if name == "frame shorter than said" {
				_ = c.nc.(interface{ CloseWrite() error }).CloseWrite()
			}
			if !c.closedByPeer() {
				t.Fatal("broker kept the connection")
			}
			ping()
		})
	}
	// A batch with a bad CRC gets CORRUPT_MESSAGE and changes nothing.
	c := dialRaw(t, b)
	records := batchtest.Values(1000, []byte("x"))
	records[len(records)-1] ^= 0xff
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks, pr.TimeoutMillis = 7, 1, 5000
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "crc", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: records}}}}
	var code int16
	testutil.Eventually(t, "a leader for crc-0, made by the bad batch", func() bool {
		code = c.send(pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
		return !notLedYet(code)
	})
	if code != kerr.CorruptMessage.Code {
		t.Fatalf("bad CRC: error %d, want CORRUPT_MESSAGE", code)
	}
	// Bad acks, an unknown partition and a bad topic name.
	pr.Acks = 5
	pr.Topics[0].Partitions[0].Records = batchtest.Values(1000, []byte("x"))
	if code := c.send(pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidRequiredAcks.Code {
		t.Fatalf("acks 5: error %d", code)
	}
	pr.Acks = 1
	pr.Topics[0].Partitions[0].Partition = 7
	if code := c.send(pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("partition 7: error %d", code)
	}
	pr.Topics[0].Topic = "bad name!"
	pr.Topics[0].Partitions[0].Partition = 0
	if code := c.send(pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("bad topic name: error %d", code)
	}
	end, err := b.Partition("crc", 0)
	if err != nil || end.LogEndOffset() != 0 {
		t.Fatalf("log after refused batches: %v, end %d", err, end.LogEndOffset())
	}
	ping()
}

// Fetch limits: PartitionMaxBytes and MaxBytes bound the records, except
// that the first batch always goes whole; offsets past the end are
// OFFSET_OUT_OF_RANGE.
func TestFetchLimits(t *testing.T) {
	_, b := startOne(t)
	c := dialRaw(t, b)
	var batches [][]byte
	for i := range 3 {
		rec := batchtest.Values(int64(1000+i), make([]byte, 300))
		if r := produceRaw(c, "lim", rec); r.ErrorCode != 0 || r.BaseOffset != int64(i) {
			t.Fatalf("produce %d: %+v", i, r)
		}
		batch.SetBaseOffset(rec, int64(i)) // as the broker stored it
		batch.SetPartitionLeaderEpoch(rec, broker.Replica(b, "lim", 0).LeaderEpoch())
		batches = append(batches, rec)
	}
	size := int32(len(batches[0]))
	fetch := func(offset int64, maxBytes, partMax int32) kmsg.FetchResponseTopicPartition {
		fr := kmsg.NewPtrFetchRequest()
		fr.Version, fr.ReplicaID, fr.MaxBytes = 12, -1, maxBytes
		fr.Topics = []kmsg.FetchRequestTopic{{Topic: "lim", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1, FetchOffset: offset, PartitionMaxBytes: partMax}}}}
		return c.send(fr).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	}
	for _, tc := range []struct {
		name              string
		maxBytes, partMax int32
		want              int
	}{
		{"partition limit below one batch still gets the first", 1 << 20, 1, 1},
		{"partition limit of two batches", 1 << 20, 2*size + 10, 2},
		{"response limit of two batches", 2*size + 10, 1 << 20, 2},
		{"no limits hit", 1 << 20, 1 << 20, 3},
	} {
		p := fetch(0, tc.maxBytes, tc.partMax)
		var want []byte
		for _, bt := range batches[:tc.want] {
			want = append(want, bt...)
		}
		if p.ErrorCode != 0 || string(p.RecordBatches) != string(want) || p.HighWatermark != 3 || p.LogStartOffset != 0 {
			t.Fatalf("%s: error %d, %d bytes, want %d batches (%d bytes)", tc.name, p.ErrorCode, len(p.RecordBatches), tc.want, len(want))
		}
	}
	if p := fetch(4, 1<<20, 1<<20); p.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch past the end: error %d", p.ErrorCode)
	}
	if p := fetch(3, 1<<20, 1<<20); p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch at the end: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
}

// Pipelined requests are answered in the order they were sent, and a
// produce with acks=0 gets no response at all: the next response on the
// connection belongs to the next request.
func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	_, b := startOne(t)
	c := dialRaw(t, b)
	produceRaw(c, "pipe", batchtest.Values(1, []byte("warm"))) // create the topic

	type sent struct {
		corr int32
		req  kmsg.Request
	}
	var order []sent
	write := func(req kmsg.Request) {
		c.corr++
		frame := binary.BigEndian.AppendUint32(nil, 0)
		frame = binary.BigEndian.AppendUint16(frame, uint16(req.Key()))
		frame = binary.BigEndian.AppendUint16(frame, uint16(req.GetVersion()))
		frame = binary.BigEndian.AppendUint32(frame, uint32(c.corr))
		frame = binary.BigEndian.AppendUint16(frame, 0xffff)
		if req.IsFlexible() {
			frame = append(frame, 0)
		}
		frame = req.AppendTo(frame)
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		if _, err := c.nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		order = append(order, sent{c.corr, req})
	}
	for i := range 20 {
		switch i % 4 {
		case 0: // a long poll that waits for data the next produce brings
			fr := kmsg.NewPtrFetchRequest()
			fr.Version, fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = 12, -1, 10_000, 1, 1<<20
			fr.Topics = []kmsg.FetchRequestTopic{{Topic: "pipe", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1, FetchOffset: int64(1 + i/2), PartitionMaxBytes: 1 << 20}}}}
			write(fr)
		case 1: // acks=0: no response
			pr := kmsg.NewPtrProduceRequest()
			pr.Version, pr.Acks = 9, 0
			pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "pipe", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: batchtest.Values(1, []byte("zero"))}}}}
			c.corr++ // sent, but never answered
			frame := binary.BigEndian.AppendUint32(nil, 0)
			frame = binary.BigEndian.AppendUint16(frame, 0)
			frame = binary.BigEndian.AppendUint16(frame, 9)
			frame = binary.BigEndian.AppendUint32(frame, uint32(c.corr))
			frame = binary.BigEndian.AppendUint16(frame, 0xffff)
			frame = append(frame, 0)
			frame = pr.AppendTo(frame)
			binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
			if _, err := c.nc.Write(frame); err != nil {
				t.Fatal(err)
			}
		case 2: // acks=all: waits for fsync
			pr := kmsg.NewPtrProduceRequest()
			pr.Version, pr.Acks, pr.TimeoutMillis = 9, -1, 5000
			pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "pipe", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: batchtest.Values(1, []byte("all"))}}}}
			write(pr)
		case 3:
			md := kmsg.NewPtrMetadataRequest()
			md.Version = 12
			write(md)
		}
	}
	for _, s := range order {
		body := c.readFrame()
		if got := int32(binary.BigEndian.Uint32(body)); got != s.corr {
			t.Fatalf("response for correlation id %d, want %d (%s)", got, s.corr, kmsg.NameForKey(s.req.Key()))
		}
		resp := s.req.ResponseKind()
		resp.SetVersion(s.req.GetVersion())
		if err := resp.ReadFrom(body[5:]); err != nil {
			t.Fatalf("decode %s: %v", kmsg.NameForKey(s.req.Key()), err)
		}
		if pr, ok := resp.(*kmsg.ProduceResponse); ok && pr.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("produce error %d", pr.Topics[0].Partitions[0].ErrorCode)
		}
	}
	p, _ := b.Partition("pipe", 0)
	if p.LogEndOffset() != 11 { // warm-up + 5 acks=0 + 5 acks=all
		t.Fatalf("log end %d, want 11", p.LogEndOffset())
	}
}
