package brokerclient

import (
	"context"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	got := make(chan struct{}, 1)
	go func() { // a broker that hangs up on every request
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err == nil {
					got <- struct{}{}
				}
			}()
		}
	}()

	cl := NewClient(ln.Addr().String(), "test")
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
