package broker_test

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
)

func TestIdempotentSequencesAndRestart(t *testing.T) {
	bc, b := startOne(t)
	c := dialRaw(t, b)
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.Version = 4
	ipr := c.send(ip).(*kmsg.InitProducerIDResponse)
	if ipr.ErrorCode != 0 || ipr.ProducerID < 0 {
		t.Fatalf("InitProducerID: %+v", ipr)
	}
	pid := ipr.ProducerID

	if r := produceRaw(c, "idem", idempotentBatch(pid, 0, 0, "a", "b")); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("seq 0: %+v", r)
	}
	if r := produceRaw(c, "idem", idempotentBatch(pid, 0, 2, "c")); r.ErrorCode != 0 || r.BaseOffset != 2 {
		t.Fatalf("seq 2: %+v", r)
	}
	// A retry of either gets its original offset and writes nothing.
	if r := produceRaw(c, "idem", idempotentBatch(pid, 0, 0, "a", "b")); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("retry of seq 0: %+v", r)
	}
	// A gap is refused.
	if r := produceRaw(c, "idem", idempotentBatch(pid, 0, 5, "x")); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: error %d", r.ErrorCode)
	}
	p, _ := b.Partition("idem", 0)
	if p.LogEndOffset() != 3 {
		t.Fatalf("log end %d after a duplicate and a gap, want 3", p.LogEndOffset())
	}
	// After a restart the state is rebuilt from the log.
	b = restart(bc, 0)
	waitLeading(t, b, "idem")
	c = dialRaw(t, b)
	if r := produceRaw(c, "idem", idempotentBatch(pid, 0, 2, "c")); r.ErrorCode != 0 || r.BaseOffset != 2 {
		t.Fatalf("retry of seq 2 after restart: %+v", r)
	}
	if r := produceRaw(c, "idem", idempotentBatch(pid, 0, 3, "d")); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("seq 3 after restart: %+v", r)
	}
	// A bumped epoch starts again at 0; the old epoch is fenced.
	if r := produceRaw(c, "idem", idempotentBatch(pid, 1, 0, "e")); r.ErrorCode != 0 || r.BaseOffset != 4 {
		t.Fatalf("epoch 1 seq 0: %+v", r)
	}
	if r := produceRaw(c, "idem", idempotentBatch(pid, 0, 4, "f")); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: error %d", r.ErrorCode)
	}
	// Producer ids are not reused after a restart.
	ipr = c.send(ip).(*kmsg.InitProducerIDResponse)
	if ipr.ProducerID <= pid {
		t.Fatalf("producer id %d after restart, earlier one was %d", ipr.ProducerID, pid)
	}
}

// dropProxy forwards a client's connections to the broker but drops the
// responses to the first n produce requests by closing the connection, so
// the producer retries batches the broker already wrote.
type dropProxy struct {
	ln      net.Listener
	target  string
	toDrop  atomic.Int32
	dropped atomic.Int32
	wg      sync.WaitGroup
}

// startDropProxy serves ln, forwarding to target.
func startDropProxy(t *testing.T, ln net.Listener, target string, n int32) *dropProxy {
	p := &dropProxy{ln: ln, target: target}
	p.toDrop.Store(n)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *dropProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	var mu sync.Mutex
	produces := map[int32]bool{} // correlation ids of produce requests
	go func() {
		defer server.Close()
		for {
			frame, err := readFrameFrom(client)
			if err != nil {
				return
			}
			if len(frame) >= 8 && binary.BigEndian.Uint16(frame[0:2]) == 0 {
				mu.Lock()
				produces[int32(binary.BigEndian.Uint32(frame[4:8]))] = true
				mu.Unlock()
			}
			if writeFrameTo(server, frame) != nil {
				return
			}
		}
	}()
	for {
		frame, err := readFrameFrom(server)
		if err != nil {
			return
		}
		mu.Lock()
		isProduce := len(frame) >= 4 && produces[int32(binary.BigEndian.Uint32(frame[0:4]))]
		mu.Unlock()
		if isProduce && p.toDrop.Add(-1) >= 0 {
			p.dropped.Add(1)
			return // the broker wrote the batch; the client never hears
		}
		if writeFrameTo(client, frame) != nil {
			return
		}
	}
}

func readFrameFrom(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeFrameTo(w io.Writer, b []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	return err
}

// franz-go's idempotent producer, with produce responses lost on the way
// back, retries batches the broker already has: every record must be in the
// log exactly once, in order.
func TestIdempotentProducerRetriesMakeNoDuplicates(t *testing.T) {
	// Clients must come back through the proxy: the broker advertises it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, b := startOne(t, func(_ int, cfg *broker.Config) { cfg.AdvertisedAddr = ln.Addr().String() })
	proxy := startDropProxy(t, ln, b.Addr().String(), 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(proxy.ln.Addr().String()), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.MaxProduceRequestsInflightPerBroker(1),
		kgo.MetadataMinAge(50*time.Millisecond)) // retries refresh metadata first
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := values(300, "r")
	ctx := ctxT(t)
	for _, v := range want {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "retry", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if proxy.dropped.Load() != 3 {
		t.Fatalf("proxy dropped %d produce responses, want 3", proxy.dropped.Load())
	}
	checkRecords(t, consumeAll(t, b, "retry", len(want)), want)
	p, _ := b.Partition("retry", 0)
	if p.LogEndOffset() != int64(len(want)) {
		t.Fatalf("log holds %d records for %d produced: duplicates", p.LogEndOffset(), len(want))
	}
}
