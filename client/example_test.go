package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/client"
)

// startBroker runs mlog in this process as an application embedding it
// would: a one-node cluster on free loopback ports. (Tests use
// brokertest, which needs a *testing.T an example does not have.)
func startBroker() (addr string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "mlog-example")
	if err != nil {
		return "", nil, err
	}
	cfg := broker.DefaultConfig()
	cfg.DataDir, cfg.ListenAddr = dir, "127.0.0.1:0"
	cfg.Cluster.SerfAddr, cfg.Cluster.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Cluster.Network = broker.NetworkLocal // elected in well under a second
	cfg.Logger = slog.New(slog.DiscardHandler)
	b, err := broker.New(cfg)
	if err == nil {
		if err = b.Start(); err != nil {
			_ = b.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return b.Addr().String(), func() { b.Close(); os.RemoveAll(dir) }, nil
}

func ExampleProducerClient() {
	addr, stop, err := startBroker() // a broker in this process; use "127.0.0.1:9094" for `make run`'s
	if err != nil {
		panic(err)
	}
	defer stop()
	ctx := context.Background()
	pc, err := client.NewProducerClient(addr)
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	resp, err := pc.Produce(ctx, &client.ProduceRequest{Topic: "orders", Value: []byte("order-123"), Acks: client.AckAll})
	if err != nil {
		panic(err)
	}
	fmt.Printf("offset=%d\n", resp.Offset)
	batch, err := pc.ProduceBatch(ctx, &client.ProduceBatchRequest{Topic: "orders", Values: [][]byte{[]byte("val1"), []byte("val2")}, Acks: client.AckLeader})
	if err != nil {
		panic(err)
	}
	fmt.Printf("base=%d last=%d\n", batch.BaseOffset, batch.LastOffset)
	// Output:
	// offset=0
	// base=1 last=2
}

func ExampleConsumerClient() {
	addr, stop, err := startBroker()
	if err != nil {
		panic(err)
	}
	defer stop()
	ctx := context.Background()
	pc, _ := client.NewProducerClient(addr)
	defer pc.Close()
	if _, err := pc.Produce(ctx, &client.ProduceRequest{Topic: "orders", Value: []byte("order-123"), Acks: client.AckAll}); err != nil {
		panic(err)
	}

	cc, err := client.NewConsumerClient(addr)
	if err != nil {
		panic(err)
	}
	defer cc.Close()
	resp, err := cc.Fetch(ctx, &client.FetchRequest{Topic: "orders", Offset: 0, Id: "my-consumer"})
	if err != nil {
		panic(err)
	}
	if resp.Entry != nil {
		fmt.Printf("offset=%d value=%s\n", resp.Entry.Offset, resp.Entry.Value)
	}
	if err := cc.CommitOffset(ctx, &client.CommitOffsetRequest{Topic: "orders", Offset: 1, Id: "my-consumer"}); err != nil {
		panic(err)
	}
	off, err := cc.FetchOffset(ctx, &client.FetchOffsetRequest{Topic: "orders", Id: "my-consumer"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("last committed offset: %d\n", off.Offset)
	// Output:
	// offset=0 value=order-123
	// last committed offset: 1
}

func ExampleRemoteClient() {
	addr, stop, err := startBroker()
	if err != nil {
		panic(err)
	}
	defer stop()
	ctx := context.Background()
	rc, err := client.NewRemoteClient(addr)
	if err != nil {
		panic(err)
	}
	defer rc.Close()
	if _, err := rc.CreateTopic(ctx, &client.CreateTopicRequest{Topic: "orders", ReplicaCount: 1}); err != nil {
		panic(err)
	}
	list, err := rc.ListTopics(ctx, &client.ListTopicsRequest{})
	if err != nil {
		panic(err)
	}
	for _, topic := range list.Topics {
		fmt.Printf("topic=%s leader=%s\n", topic.Name, topic.LeaderNodeID)
	}
	if _, err := rc.DeleteTopic(ctx, &client.DeleteTopicRequest{Topic: "orders"}); err != nil {
		panic(err)
	}
	// Output:
	// topic=orders leader=node-1
}
