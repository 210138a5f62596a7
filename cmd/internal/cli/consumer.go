package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ConsumerCmd is `mlog consumer` (and the `consumer` binary).
func ConsumerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "consumer", Short: "Consume records to stdout"}
	cmd.AddCommand(consumerConnectCmd())
	return cmd
}

func consumerConnectCmd() *cobra.Command {
	var addrs, topic, id string
	var fromBeginning bool
	var maxMessages int
	var tf tlsFlags
	cmd := &cobra.Command{
		Use:   "connect",
		Short: "Print every record of a topic as offset<TAB>value, committing as it goes",
		Long: `Print every record of the topic as offset<TAB>value and wait for more
(a long-poll fetch). With --id the position is committed under that
consumer id (a Kafka group id) after each record, and a later run with the
same --id resumes after the last committed record; --from-beginning starts
from the first record instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			tlsOpts, err := tf.opts()
			if err != nil {
				return err
			}
			return runConsumer(cmd.OutOrStdout(), seedOpts(addrs, tlsOpts...), topic, id, fromBeginning, maxMessages)
		},
	}
	cmd.Flags().StringVar(&addrs, "addrs", "127.0.0.1:9094", "comma-separated broker addresses")
	cmd.Flags().StringVar(&topic, "topic", "", "topic (required)")
	cmd.Flags().StringVar(&id, "id", "", "consumer id: where committed offsets are kept (a Kafka group id)")
	cmd.Flags().BoolVar(&fromBeginning, "from-beginning", false, "start from the first record, not the last committed one")
	cmd.Flags().IntVar(&maxMessages, "max-messages", 0, "exit after this many records (0: run until interrupted)")
	tf.register(cmd.Flags())
	return withEnv(cmd)
}

func runConsumer(out io.Writer, seeds []kgo.Opt, topic, id string, fromBeginning bool, maxMessages int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	admCl, err := kgo.NewClient(seeds...)
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	leader, err := waitLeader(wctx, adm, topic)
	cancel()
	if err != nil {
		return fmt.Errorf("topic %q: %w", topic, err)
	}
	fmt.Fprintf(out, "connected to topic %q leader at %s\n", topic, leader)

	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return err
	}
	var committed kadm.OffsetResponses
	if id != "" && !fromBeginning {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		for {
			committed, err = adm.FetchOffsets(wctx, id)
			if err == nil || wctx.Err() != nil {
				break
			}
			time.Sleep(200 * time.Millisecond) // the coordinator is starting
		}
		cancel()
		if err != nil {
			return fmt.Errorf("fetch committed offsets of %q: %w", id, err)
		}
	}
	offsets := map[string]map[int32]kgo.Offset{topic: {}}
	resumed := false
	for p := range md.Topics[topic].Partitions {
		start, _ := starts.Lookup(topic, p)
		at := start.Offset
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil && c.At >= 0 {
			at, resumed = c.At, true
		}
		offsets[topic][p] = kgo.NewOffset().At(at)
		if p == 0 {
			if resumed {
				fmt.Fprintf(out, "Resuming from offset %d (last committed)\n", at)
			} else {
				fmt.Fprintf(out, "Starting from beginning (offset %d)\n", at)
			}
		}
	}
	cl, err := kgo.NewClient(append(slices.Clone(seeds), kgo.ConsumePartitions(offsets), kgo.FetchMaxWait(5*time.Second))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.Canceled) {
				fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v (retrying)\n", e.Topic, e.Partition, e.Err)
			}
		}
		var err error
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if done {
				return
			}
			fmt.Fprintf(out, "%d\t%s\n", r.Offset, r.Value)
			if id != "" && err == nil {
				err = commitOne(ctx, adm, id, r)
			}
			if maxMessages--; maxMessages == 0 {
				done = true
			}
		})
		if err != nil && ctx.Err() == nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// commitOne commits the position after r under the consumer id, retrying
// while the coordinator moves.
func commitOne(ctx context.Context, adm *kadm.Client, id string, r *kgo.Record) error {
	o := kadm.Offsets{}
	o.AddOffset(r.Topic, r.Partition, r.Offset+1, -1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := adm.CommitOffsets(ctx, id, o)
		if err == nil {
			err = resp.Error()
		}
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond) // coordinator moving: try again
	}
}
