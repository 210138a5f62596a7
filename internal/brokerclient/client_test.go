package brokerclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A request whose connection drops just as its context is cancelled fails
// cleanly and leaves the client usable. The cancel callback used to read
// the client's connection field after Request had cleared it (a nil
// dereference under load, a data race under -race).
func TestClientCancelWhileWaiting(t *testing.T) {
	got := make(chan struct{}, 1)
	ln := serve(t, func(c net.Conn) { // a broker that hangs up on every request
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err == nil {
			got <- struct{}{}
		}
	})

	cl := NewClient(ln.Addr().String(), "test", nil)
	defer cl.Close()
	for i := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(9)
		done := make(chan error, 1)
		go func() {
			_, err := cl.Request(ctx, req)
			done <- err
		}()
		<-got // the broker has the request and hangs up; cancel meanwhile
		cancel()
		if err := <-done; err == nil {
			t.Fatalf("request %d succeeded against a broker that never answers", i)
		}
	}
}

// serve accepts connections on a loopback port until the test ends and
// runs handle on each (closing it after).
func serve(t testing.TB, handle func(net.Conn)) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return ln
}

// answerFetches serves Fetch v12, each response carrying records.
func answerFetches(t testing.TB, records []byte) net.Listener {
	return serve(t, func(c net.Conn) {
		for {
			var size [4]byte
			if _, err := io.ReadFull(c, size[:]); err != nil {
				return
			}
			req := make([]byte, binary.BigEndian.Uint32(size[:]))
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = 12
			p := kmsg.NewFetchResponseTopicPartition()
			p.RecordBatches = records
			resp.Topics = []kmsg.FetchResponseTopic{{Topic: "t", Partitions: []kmsg.FetchResponseTopicPartition{p}}}
			b := binary.BigEndian.AppendUint32(nil, 0)
			b = append(b, req[4:8]...) // correlation id
			b = append(b, 0)           // header tags
			b = resp.AppendTo(b)
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	})
}

func fetchRecords(t testing.TB, cl *Client) []byte {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	resp, err := cl.Request(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches
}

// With KeepBuffer, responses up to the bound are read into one buffer the
// client keeps (a response's bytes alias the last one's); bigger ones, and
// every response without it, get their own.
func TestKeepBuffer(t *testing.T) {
	records := bytes.Repeat([]byte("r"), 64<<10)
	ln := answerFetches(t, records)
	for _, tc := range []struct {
		keep  int
		share bool
	}{{0, false}, {1 << 20, true}, {1 << 10, false}} {
		cl := NewClient(ln.Addr().String(), "test", nil)
		cl.KeepBuffer(tc.keep)
		a := fetchRecords(t, cl)
		b := fetchRecords(t, cl)
		cl.Close()
		if !bytes.Equal(a, records) || !bytes.Equal(b, records) {
			t.Fatalf("keep %d: records garbled", tc.keep)
		}
		if shared := &a[0] == &b[0]; shared != tc.share {
			t.Fatalf("keep %d: second response shares the first's buffer: %v, want %v", tc.keep, shared, tc.share)
		}
	}
}

// BenchmarkFetchResponse reads 1 MiB fetch responses with and without a
// kept buffer (what a follower does every round).
//
//	go test -run x -bench FetchResponse -benchmem ./internal/brokerclient/
func BenchmarkFetchResponse(b *testing.B) {
	ln := answerFetches(b, bytes.Repeat([]byte("r"), 1<<20))
	for _, keep := range []int{0, 4 << 20} {
		b.Run(fmt.Sprintf("keep=%d", keep), func(b *testing.B) {
			cl := NewClient(ln.Addr().String(), "bench", nil)
			defer cl.Close()
			cl.KeepBuffer(keep)
			b.SetBytes(1 << 20)
			b.ReportAllocs()
			for b.Loop() {
				fetchRecords(b, cl)
			}
		})
	}
}
