// Command firstread measures how soon a starting mlog (or any Kafka
// cluster) serves a topic: it asks for the topic's metadata and fetches
// every partition from its log start, straight from the partition's leader
// with franz-go's raw requests, every 10 ms until each partition answers
// without error and with records (an empty partition: without error). It
// prints the seconds from -since until then. A consumer's own backoffs are
// not measured: franz-go's consumer waits 1 s before reloading an offset
// its first try could not load (the leader not elected yet), librdkafka
// 0.5 s. scripts/bench-scale.sh runs it after restarting the servers.
//
//	go run ./firstread -brokers 127.0.0.1:9094 -topic t -since "$(date +%s.%N)"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9094", "comma-separated seed brokers")
	topic := flag.String("topic", "", "the topic whose partitions must serve")
	since := flag.String("since", "", "unix time (seconds, fractions allowed) to measure from; default: now")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if *topic == "" {
		fmt.Fprintln(os.Stderr, "firstread: -topic is required")
		os.Exit(2)
	}
	start := time.Now()
	if *since != "" {
		f, err := strconv.ParseFloat(*since, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "firstread: -since %q: %v\n", *since, err)
			os.Exit(2)
		}
		start = time.Unix(0, int64(f*1e9))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }))
	if err != nil {
		fmt.Fprintln(os.Stderr, "firstread:", err)
		os.Exit(1)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	served := map[int32]bool{}
	for {
		total, err := round(ctx, cl, *topic, served)
		if err == nil && total > 0 && len(served) == total {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "firstread: %d of %d partitions served after %v (last error: %v)\n", len(served), total, *timeout, err)
			os.Exit(1)
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Printf("%.3f\n", time.Since(start).Seconds())
}

// round asks for the topic's leaders and fetches every partition not yet
// served from its leader; it returns the partition count.
func round(ctx context.Context, cl *kgo.Client, topic string, served map[int32]bool) (int, error) {
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = []kmsg.MetadataRequestTopic{mt}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	mresp, err := mreq.RequestWith(rctx, cl)
	if err != nil {
		return 0, err
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		return 0, fmt.Errorf("metadata of %q: %+v", topic, mresp.Topics)
	}
	parts := mresp.Topics[0].Partitions
	byLeader := map[int32][]int32{}
	for _, p := range parts {
		if !served[p.Partition] && p.Leader >= 0 && p.ErrorCode == 0 {
			byLeader[p.Leader] = append(byLeader[p.Leader], p.Partition)
		}
	}
	for leader, ids := range byLeader {
		freq := kmsg.NewPtrFetchRequest()
		freq.ReplicaID, freq.MaxBytes, freq.SessionEpoch = -1, 1<<20, -1
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		for _, id := range ids {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = id, 0, 1<<10
			ft.Partitions = append(ft.Partitions, fp)
		}
		freq.Topics = []kmsg.FetchRequestTopic{ft}
		kresp, err := cl.Broker(int(leader)).Request(rctx, freq)
		if err != nil {
			continue
		}
		for _, t := range kresp.(*kmsg.FetchResponse).Topics {
			for _, p := range t.Partitions {
				// Offset 0 may be below the log start (retention): the
				// partition answers, so it serves.
				ok := p.ErrorCode == 0 && (len(p.RecordBatches) > 0 || p.HighWatermark == 0)
				if ok || p.ErrorCode == 1 /* OFFSET_OUT_OF_RANGE */ {
					served[p.Partition] = true
				}
			}
		}
	}
	return len(parts), nil
}
