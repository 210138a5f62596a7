package broker_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// FuzzRequests sends arbitrary bodies under every API key and version the
// broker serves (and some it does not) over a real connection: the broker
// must answer or close that connection, never crash, and keep serving a
// healthy client.
func FuzzRequests(f *testing.F) {
	for _, key := range []int16{0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 23, 32, 37, 42, 47, 56, 67} {
		req := kmsg.RequestForKey(key)
		for _, v := range []int16{0, 3, 4, 7, 9, 12} {
			if v > req.MaxVersion() {
				continue
			}
			req.SetVersion(v)
			f.Add(key, v, req.AppendTo(nil))
		}
	}
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks = 7, 1
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "fz", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: batchtest.Values(1, []byte("v"))}}}}
	f.Add(int16(0), int16(7), pr.AppendTo(nil))

	// A one-node cluster: the requests that change metadata (CreateTopics,
	// AlterPartition, ControlledShutdown, ...) go through its Raft.
	_, b := startOne(f, func(_ int, cfg *broker.Config) { cfg.Logger = discardLogger() })
	addr := b.Addr().String()
	healthy := dialRaw(f, b)

	f.Fuzz(func(t *testing.T, key, version int16, body []byte) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		frame := binary.BigEndian.AppendUint32(nil, 0)
		frame = binary.BigEndian.AppendUint16(frame, uint16(key))
		frame = binary.BigEndian.AppendUint16(frame, uint16(version))
		frame = binary.BigEndian.AppendUint32(frame, 7)
		frame = binary.BigEndian.AppendUint16(frame, 0xffff)
		if r := kmsg.RequestForKey(key); r != nil {
			r.SetVersion(version)
			if r.IsFlexible() {
				frame = append(frame, 0)
			}
		}
		frame = append(frame, body...)
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		if _, err := nc.Write(frame); err != nil {
			return
		}
		// An answer, a close, or (acks=0, long polls) silence are all fine.
		_ = nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var size [4]byte
		if _, err := io.ReadFull(nc, size[:]); err == nil {
			n := binary.BigEndian.Uint32(size[:])
			if n > 64<<20 {
				t.Fatalf("response of %d bytes to a %d-byte request", n, len(frame))
			}
		} else if ne := (net.Error)(nil); errors.As(err, &ne) && !ne.Timeout() {
			return
		}
		healthy.t = t // each worker runs its inputs one at a time
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		if r := healthy.send(req).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
			t.Fatalf("healthy client got error %d", r.ErrorCode)
		}
	})
}
