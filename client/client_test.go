package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/client"
)

func TestSeedClientFlow(t *testing.T) {
	addr := brokertest.Start(t, 1).Seeds()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rc, err := client.NewRemoteClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.CreateTopic(ctx, &client.CreateTopicRequest{Topic: "orders", ReplicaCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.CreateTopic(ctx, &client.CreateTopicRequest{Topic: "bad name!"}); err == nil {
		t.Fatal("created a topic with a bad name")
	}

	pc, err := client.NewProducerClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	resp, err := pc.Produce(ctx, &client.ProduceRequest{Topic: "orders", Value: []byte("order-123"), Acks: client.AckAll})
	if err != nil || resp.Offset != 0 {
		t.Fatalf("produce: %+v %v", resp, err)
	}
	batch, err := pc.ProduceBatch(ctx, &client.ProduceBatchRequest{Topic: "orders", Values: [][]byte{[]byte("val1"), []byte("val2")}, Acks: client.AckLeader})
	if err != nil || batch.BaseOffset != 1 || batch.LastOffset != 2 {
		t.Fatalf("produce batch: %+v %v", batch, err)
	}
	if _, err := pc.Produce(ctx, &client.ProduceRequest{Topic: "orders", Value: []byte("x"), Acks: 5}); err == nil {
		t.Fatal("acks 5 accepted")
	}

	cc, err := client.NewConsumerClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	f, err := cc.Fetch(ctx, &client.FetchRequest{Topic: "orders", Offset: 1, Id: "my-consumer"})
	if err != nil || f.Entry == nil || f.Entry.Offset != 1 || string(f.Entry.Value) != "val1" || f.HighWatermark != 3 {
		t.Fatalf("fetch 1: %+v %v", f, err)
	}
	if f, err := cc.Fetch(ctx, &client.FetchRequest{Topic: "orders", Offset: 3, MaxWait: 50 * time.Millisecond}); err != nil || f.Entry != nil {
		t.Fatalf("fetch past the end: %+v %v", f, err)
	}
	if o, err := cc.FetchOffset(ctx, &client.FetchOffsetRequest{Topic: "orders", Id: "my-consumer"}); err != nil || o.Offset != -1 {
		t.Fatalf("nothing committed yet: %+v %v", o, err)
	}
	if err := cc.CommitOffset(ctx, &client.CommitOffsetRequest{Topic: "orders", Offset: 2, Id: "my-consumer"}); err != nil {
		t.Fatal(err)
	}
	if o, err := cc.FetchOffset(ctx, &client.FetchOffsetRequest{Topic: "orders", Id: "my-consumer"}); err != nil || o.Offset != 2 {
		t.Fatalf("committed: %+v %v", o, err)
	}

	list, err := rc.ListTopics(ctx, &client.ListTopicsRequest{})
	if err != nil || len(list.Topics) != 1 || list.Topics[0].Name != "orders" || list.Topics[0].LeaderNodeID != "node-1" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := rc.DeleteTopic(ctx, &client.DeleteTopicRequest{Topic: "orders"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.DeleteTopic(ctx, &client.DeleteTopicRequest{Topic: "orders"}); err == nil {
		t.Fatal("deleted a topic twice")
	}
	if _, err := cc.Fetch(ctx, &client.FetchRequest{Topic: "orders", Offset: 0}); err == nil {
		t.Fatal("fetched from a deleted topic")
	}
}
