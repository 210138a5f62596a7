package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerCmd is `mlog producer` (and the `producer` binary).
func ProducerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "producer", Short: "Produce records from stdin"}
	cmd.AddCommand(producerConnectCmd())
	return cmd
}

func producerConnectCmd() *cobra.Command {
	var addrs, topic, acks string
	var tf tlsFlags
	cmd := &cobra.Command{
		Use:   "connect",
		Short: "Produce each line of stdin as a record and print its offset",
		Long: `Produce each line of stdin as one record to partition 0 of the topic and
print offset=N once it is acknowledged. --acks 0 (none), 1 (the leader,
default) or 2/all/-1 (every in-sync replica). When the leader changes or a
connection drops it says so, finds the new leader and goes on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			tlsOpts, err := tf.opts()
			if err != nil {
				return err
			}
			return runProducer(cmd.InOrStdin(), cmd.OutOrStdout(), seedOpts(addrs, tlsOpts...), topic, acks)
		},
	}
	cmd.Flags().StringVar(&addrs, "addrs", "127.0.0.1:9094", "comma-separated broker addresses")
	cmd.Flags().StringVar(&topic, "topic", "", "topic (required)")
	cmd.Flags().StringVar(&acks, "acks", "1", "0 (none), 1 (leader) or 2 (all in-sync replicas; also all, -1)")
	tf.register(cmd.Flags())
	return withEnv(cmd)
}

func producerAcks(acks string) ([]kgo.Opt, error) {
	switch strings.ToLower(acks) {
	case "2", "all", "-1":
		return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, nil
	case "1":
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, nil
	case "0":
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, nil
	}
	return nil, fmt.Errorf("--acks %q: want 0, 1, 2 (or all, -1)", acks)
}

func runProducer(in io.Reader, out io.Writer, seeds []kgo.Opt, topic, acks string) error {
	ackOpts, err := producerAcks(acks)
	if err != nil {
		return err
	}
	opts := append(seeds, append(ackOpts, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(5*time.Second))...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	leader, err := waitLeader(wctx, adm, topic)
	cancel()
	if err != nil {
		// The topic may not exist yet: the first record creates it.
		leader = ""
	} else {
		fmt.Fprintf(out, "connected to topic %q leader at %s\n", topic, leader)
	}
	fmt.Fprintln(out, "enter messages, each line will be produced to the topic (Ctrl-D to exit)")
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		for {
			r, err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(line)}).First()
			if err == nil {
				if cur, lerr := leaderAddr(ctx, adm, topic); lerr == nil && cur != leader {
					if leader != "" {
						fmt.Fprintf(out, "reconnected to topic leader at %s\n", cur)
					} else {
						fmt.Fprintf(out, "connected to topic %q leader at %s\n", topic, cur)
					}
					leader = cur
				}
				if acks == "0" {
					fmt.Fprintln(out, "offset=?") // acks=0: the broker does not answer
				} else {
					fmt.Fprintf(out, "offset=%d\n", r.Offset)
				}
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintln(out, "reconnecting (leader change or connection issue)...")
			cl.ForceMetadataRefresh()
			wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			cur, werr := waitLeader(wctx, adm, topic)
			cancel()
			if werr != nil {
				return fmt.Errorf("no leader for %q: %w", topic, err)
			}
			if cur != leader {
				fmt.Fprintf(out, "reconnected to topic leader at %s\n", cur)
				leader = cur
			}
		}
	}
	return sc.Err()
}
