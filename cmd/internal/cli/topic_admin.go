package cli

// `mlog topic describe`, `mlog topic alter-config` and `mlog topic
// delete-records`: a topic's partitions, leaders, ISR, offsets, sizes and
// configs; its configs changed without a restart; its oldest records
// deleted (Kafka's kafka-topics --describe, kafka-configs --alter,
// kafka-delete-records).

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func ids(rs []int32) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprint(r)
	}
	return strings.Join(s, ",")
}

func topicDescribeCmd() *cobra.Command {
	f := &topicFlags{}
	cmd := &cobra.Command{
		Use:   "describe",
		Short: "A topic's partitions (leader, replicas, ISR, offsets, size on disk) and configs",
		Long: `Describe a topic (every topic without --topic):
  topic=orders id=9b2c... partitions=3 replication-factor=3
    partition=0 leader=1 epoch=2 replicas=1,2,3 isr=1,2,3 start=0 end=1200 size=131072
    ...
    configs: retention.ms=3600000 (topic) cleanup.policy=delete (default) ...
Replicas being added or removed by a reassignment are listed as
adding= and removing=. size is the leader's log on disk in bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				var topics []string
				if f.topic != "" {
					topics = []string{f.topic}
				}
				return describeTopics(ctx, cmd.OutOrStdout(), adm, topics)
			})
		},
	}
	f.common(cmd, true)
	return withEnv(cmd)
}

func describeTopics(ctx context.Context, out io.Writer, adm *kadm.Client, topics []string) error {
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	names := md.Topics.Names()
	for _, name := range names {
		if err := md.Topics[name].Err; err != nil {
			return fmt.Errorf("topic %q: %w", name, err)
		}
	}
	starts, err := adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return fmt.Errorf("start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return fmt.Errorf("end offsets: %w", err)
	}
	dirs, _ := adm.DescribeAllLogDirs(ctx, nil) // sizes are best effort
	configs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return fmt.Errorf("configs: %w", err)
	}
	set := kadm.TopicsSet{}
	for _, name := range names {
		for _, p := range md.Topics[name].Partitions {
			set.Add(name, p.Partition)
		}
	}
	moving, _ := adm.ListPartitionReassignments(ctx, set)
	for _, name := range names {
		t := md.Topics[name]
		parts := t.Partitions.Sorted()
		rf := 0
		if len(parts) > 0 {
			rf = len(parts[0].Replicas)
		}
		fmt.Fprintf(out, "topic=%s id=%x partitions=%d replication-factor=%d\n", name, t.ID[:], len(parts), rf)
		for _, p := range parts {
			line := fmt.Sprintf("  partition=%d leader=%d epoch=%d replicas=%s isr=%s", p.Partition, p.Leader, p.LeaderEpoch, ids(p.Replicas), ids(p.ISR))
			if r, ok := moving[name][p.Partition]; ok {
				line += fmt.Sprintf(" adding=%s removing=%s", ids(r.AddingReplicas), ids(r.RemovingReplicas))
			}
			if o, ok := starts.Lookup(name, p.Partition); ok && o.Err == nil {
				line += fmt.Sprintf(" start=%d", o.Offset)
			}
			if o, ok := ends.Lookup(name, p.Partition); ok && o.Err == nil {
				line += fmt.Sprintf(" end=%d", o.Offset)
			}
			if d, ok := dirs[p.Leader]; ok {
				if lp, ok := d.LookupPartition(name, p.Partition); ok {
					line += fmt.Sprintf(" size=%d", lp.Size)
				}
			}
			fmt.Fprintln(out, line)
		}
		if rc, err := configs.On(name, nil); err == nil && rc.Err == nil {
			var cs []string
			cfgs := slices.Clone(rc.Configs)
			slices.SortFunc(cfgs, func(a, b kadm.Config) int { return strings.Compare(a.Key, b.Key) })
			for _, c := range cfgs {
				if c.Value == nil {
					continue
				}
				src := "default"
				if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
					src = "topic"
				}
				cs = append(cs, fmt.Sprintf("%s=%s (%s)", c.Key, *c.Value, src))
			}
			fmt.Fprintf(out, "  configs: %s\n", strings.Join(cs, " "))
		}
	}
	return nil
}

func topicAlterConfigCmd() *cobra.Command {
	f := &topicFlags{}
	var set, del []string
	cmd := &cobra.Command{
		Use:   "alter-config",
		Short: "Change a topic's configs without a restart (retention.ms, segment.bytes, cleanup.policy, min.insync.replicas, ...)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.needTopic(); err != nil {
				return err
			}
			changes, err := configChanges(set, del)
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				res, err := adm.AlterTopicConfigs(ctx, changes, f.topic)
				return alterResult(cmd.OutOrStdout(), fmt.Sprintf("topic %q", f.topic), res, err)
			})
		},
	}
	f.common(cmd, true)
	cmd.Flags().StringArrayVar(&set, "set", nil, "config key=value to set, repeatable")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "config key to remove (back to the default), repeatable")
	return withEnv(cmd)
}

func topicDeleteRecordsCmd() *cobra.Command {
	f := &topicFlags{}
	var partition int32
	var before int64
	cmd := &cobra.Command{
		Use:   "delete-records",
		Short: "Delete a partition's records below an offset (the log start moves there; -1: everything committed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.needTopic(); err != nil {
				return err
			}
			if before < -1 {
				return fmt.Errorf("--before %d: want an offset, or -1 for the high watermark", before)
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				os := kadm.Offsets{}
				os.Add(kadm.Offset{Topic: f.topic, Partition: partition, At: before})
				res, err := adm.DeleteRecords(ctx, os)
				if err != nil {
					return fmt.Errorf("delete records: %w", err)
				}
				r, ok := res.Lookup(f.topic, partition)
				if !ok {
					return fmt.Errorf("delete records: no answer for %s-%d", f.topic, partition)
				}
				if r.Err != nil {
					return fmt.Errorf("delete records of %s-%d: %w", f.topic, partition, r.Err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s-%d now starts at %d\n", f.topic, partition, r.LowWatermark)
				return nil
			})
		},
	}
	f.common(cmd, true)
	cmd.Flags().Int32Var(&partition, "partition", 0, "partition")
	cmd.Flags().Int64Var(&before, "before", -1, "delete the records below this offset (-1: below the high watermark)")
	return withEnv(cmd)
}
