package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicCmd is `mlog topic` (and the `topic` binary): create, delete, list.
func TopicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Create, delete, list and describe topics, change their configs, delete old records"}
	cmd.AddCommand(topicCreateCmd(), topicDeleteCmd(), topicListCmd(), topicDescribeCmd(), topicAlterConfigCmd(), topicDeleteRecordsCmd())
	return cmd
}

// adminFlags are what every admin command (topic, user, acl) takes: where
// the cluster is, how long to try, and how to log in.
type adminFlags struct {
	addrs   string
	timeout time.Duration
	tls     tlsFlags
}

func (f *adminFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.addrs, "addrs", "127.0.0.1:9094", "comma-separated broker addresses")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	f.tls.register(cmd.Flags())
}

type topicFlags struct {
	adminFlags
	topic      string
	replicas   int16
	partitions int32
	configs    []string
}

func (f *topicFlags) common(cmd *cobra.Command, withTopic bool) {
	f.register(cmd)
	if withTopic {
		cmd.Flags().StringVar(&f.topic, "topic", "", "topic name (required)")
	}
}

// run calls fn with an admin client on --addrs, within --timeout.
func (f *adminFlags) run(cmd *cobra.Command, fn func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) error) error {
	tlsOpts, err := f.tls.opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(seedOpts(f.addrs, tlsOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return fn(ctx, cl, kadm.NewClient(cl))
}

func (f *topicFlags) needTopic() error {
	if f.topic == "" {
		return errors.New("--topic is required")
	}
	return nil
}

func topicCreateCmd() *cobra.Command {
	f := &topicFlags{}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a topic",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.needTopic(); err != nil {
				return err
			}
			configs := map[string]*string{}
			for _, kv := range f.configs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--config %q: want key=value", kv)
				}
				configs[k] = &v
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				res, err := adm.CreateTopic(ctx, f.partitions, f.replicas, configs, f.topic)
				if err == nil {
					err = res.Err
				}
				if err != nil {
					return fmt.Errorf("create topic %q: %w", f.topic, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created topic %q: partitions=%d replicas=%d\n", f.topic, res.NumPartitions, res.ReplicationFactor)
				return nil
			})
		},
	}
	f.common(cmd, true)
	cmd.Flags().Int16Var(&f.replicas, "replicas", -1, "replication factor (-1: min(3, brokers))")
	cmd.Flags().Int32Var(&f.partitions, "partitions", 1, "partitions")
	cmd.Flags().StringArrayVar(&f.configs, "config", nil, "topic config key=value, repeatable (e.g. retention.ms=3600000)")
	return withEnv(cmd)
}

func topicDeleteCmd() *cobra.Command {
	f := &topicFlags{}
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a topic and its data",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.needTopic(); err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				res, err := adm.DeleteTopic(ctx, f.topic)
				if err == nil {
					err = res.Err
				}
				if err != nil {
					return fmt.Errorf("delete topic %q: %w", f.topic, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %q\n", f.topic)
				return nil
			})
		},
	}
	f.common(cmd, true)
	return withEnv(cmd)
}

func topicListCmd() *cobra.Command {
	f := &topicFlags{}
	var internal bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics: leader, epoch, and each replica's ISR membership and log end offset",
		Long: `List topics, one line per partition:
  topic=orders leader=node-1 epoch=1 replicas=node-2(isr=true,leo=0),node-3(isr=true,leo=0)
(topics with several partitions add partition=N). replicas lists the
followers; leo is each replica's log end offset, asked of that broker.
Internal topics (__consumer_offsets) are listed only with --internal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) error {
				return listTopics(ctx, cmd.OutOrStdout(), cl, adm, internal)
			})
		},
	}
	f.common(cmd, false)
	cmd.Flags().BoolVar(&internal, "internal", false, "also list internal topics (__consumer_offsets)")
	return withEnv(cmd)
}

func nodeName(id int32) string {
	if id < 0 {
		return "none"
	}
	return fmt.Sprintf("node-%d", id)
}

func listTopics(ctx context.Context, out io.Writer, cl *kgo.Client, adm *kadm.Client, internal bool) error {
	list := adm.ListTopics
	if internal {
		list = adm.ListTopicsWithInternal
	}
	topics, err := list(ctx)
	if err != nil {
		return err
	}
	for _, name := range topics.Names() {
		t := topics[name]
		parts := t.Partitions.Sorted()
		for _, p := range parts {
			var reps []string
			for _, r := range p.Replicas {
				if r == p.Leader {
					continue
				}
				leo, err := replicaLEO(ctx, cl, r, name, p.Partition)
				leoStr := fmt.Sprint(leo)
				if err != nil {
					leoStr = "?"
				}
				reps = append(reps, fmt.Sprintf("%s(isr=%t,leo=%s)", nodeName(r), slices.Contains(p.ISR, r), leoStr))
			}
			part := ""
			if len(parts) > 1 {
				part = fmt.Sprintf(" partition=%d", p.Partition)
			}
			fmt.Fprintf(out, "topic=%s%s leader=%s epoch=%d replicas=%s\n", name, part, nodeName(p.Leader), p.LeaderEpoch, strings.Join(reps, ","))
		}
	}
	return nil
}

// replicaLEO asks broker id for its replica's log end offset, with the
// debugging replica id that lets a follower answer.
func replicaLEO(ctx context.Context, cl *kgo.Client, id int32, topic string, partition int32) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -2
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, -1, -1
	req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: topic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{rp}}}
	resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0, errors.New("malformed ListOffsets response")
	}
	r := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return 0, err
	}
	return r.Offset, nil
}
