package cli

// `mlog cluster` (describe, rebalance, elect-leaders, alter-config) and
// `mlog broker decommission`: operating a cluster that grows and shrinks,
// over Kafka's admin APIs (DescribeCluster, AlterPartitionReassignments,
// ListPartitionReassignments, ElectLeaders, IncrementalAlterConfigs,
// UnregisterBroker), so the same can be done with any Kafka tool.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ClusterCmd is `mlog cluster`.
func ClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Describe the cluster, rebalance replicas and leaders, change dynamic broker configs"}
	cmd.AddCommand(clusterDescribeCmd(), clusterRebalanceCmd(), clusterElectCmd(), clusterAlterConfigCmd())
	return cmd
}

// BrokerCmd is `mlog broker`.
func BrokerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "broker", Short: "Decommission a broker"}
	cmd.AddCommand(brokerDecommissionCmd())
	return cmd
}

func clusterDescribeCmd() *cobra.Command {
	f := &adminFlags{}
	cmd := &cobra.Command{
		Use:   "describe",
		Short: "The cluster id, controller, brokers (replicas and leaders each holds) and reassignments in progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) error {
				req := kmsg.NewPtrDescribeClusterRequest()
				resp, err := req.RequestWith(ctx, cl)
				if err == nil {
					err = kerr.ErrorForCode(resp.ErrorCode)
				}
				if err != nil {
					return fmt.Errorf("describe cluster: %w", err)
				}
				cur, _, err := currentAssignment(ctx, adm)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "cluster=%s controller=%s brokers=%d partitions=%d\n", resp.ClusterID, nodeName(resp.ControllerID), len(resp.Brokers), len(cur))
				var ids []int32
				for _, b := range resp.Brokers {
					ids = append(ids, b.NodeID)
				}
				reps, leads := cur.loads(ids, false), cur.loads(ids, true)
				slices.SortFunc(resp.Brokers, func(a, b kmsg.DescribeClusterResponseBroker) int { return int(a.NodeID - b.NodeID) })
				for _, b := range resp.Brokers {
					rack := ""
					if b.Rack != nil {
						rack = " rack=" + *b.Rack
					}
					fmt.Fprintf(out, "  %s at %s:%d%s replicas=%d preferred-leader-of=%d\n", nodeName(b.NodeID), b.Host, b.Port, rack, reps[b.NodeID], leads[b.NodeID])
				}
				return printReassignments(ctx, out, adm, cur)
			})
		},
	}
	f.register(cmd)
	return withEnv(cmd)
}

// currentAssignment is every partition's replicas and the live brokers.
func currentAssignment(ctx context.Context, adm *kadm.Client) (assignment, []int32, error) {
	md, err := adm.Metadata(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("metadata: %w", err)
	}
	cur := assignment{}
	for name, t := range md.Topics {
		if t.Err != nil {
			continue
		}
		for _, p := range t.Partitions {
			cur[partitionKey{name, p.Partition}] = slices.Clone(p.Replicas)
		}
	}
	// A partition being moved counts with its target replicas: the ones
	// being removed are on their way out (planning from all of them
	// would raise its replication factor).
	moving, err := inProgress(ctx, adm, cur)
	if err != nil {
		return nil, nil, fmt.Errorf("list reassignments: %w", err)
	}
	for _, r := range moving.Sorted() {
		k := partitionKey{r.Topic, r.Partition}
		cur[k] = slices.DeleteFunc(slices.Clone(r.Replicas), func(id int32) bool { return slices.Contains(r.RemovingReplicas, id) })
	}
	var live []int32
	for _, b := range md.Brokers {
		live = append(live, b.NodeID)
	}
	slices.Sort(live)
	return cur, live, nil
}

// inProgress lists the reassignments in progress over cur's partitions.
func inProgress(ctx context.Context, adm *kadm.Client, cur assignment) (kadm.ListPartitionReassignmentsResponses, error) {
	set := kadm.TopicsSet{}
	for k := range cur {
		set.Add(k.Topic, k.Partition)
	}
	return adm.ListPartitionReassignments(ctx, set)
}

func printReassignments(ctx context.Context, out io.Writer, adm *kadm.Client, cur assignment) error {
	res, err := inProgress(ctx, adm, cur)
	if err != nil {
		return fmt.Errorf("list reassignments: %w", err)
	}
	for _, r := range res.Sorted() {
		fmt.Fprintf(out, "  reassigning %s-%d replicas=%v adding=%v removing=%v\n", r.Topic, r.Partition, r.Replicas, r.AddingReplicas, r.RemovingReplicas)
	}
	return nil
}

// moveFlags are what the commands that move replicas take.
type moveFlags struct {
	adminFlags
	execute bool
}

// applyPlan reassigns the partitions plan changes, waits until every move
// is done (the new replicas caught up and in the ISR), and makes the
// preferred replicas lead.
func applyPlan(ctx context.Context, out io.Writer, adm *kadm.Client, cur, plan assignment) error {
	moves := changes(cur, plan)
	if len(moves) == 0 {
		return nil
	}
	req := kadm.AlterPartitionAssignmentsReq{}
	for _, k := range moves {
		req.Assign(k.Topic, k.Partition, plan[k])
	}
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return fmt.Errorf("reassign: %w", err)
	}
	fmt.Fprintf(out, "reassigning %d partitions; waiting for the new replicas to catch up\n", len(moves))
	last := -1
	for {
		left, err := inProgress(ctx, adm, plan)
		if err != nil {
			return fmt.Errorf("list reassignments: %w", err)
		}
		n := len(left.Sorted())
		if n == 0 {
			break
		}
		if n != last {
			fmt.Fprintf(out, "  %d partitions still moving\n", n)
			last = n
		}
		select {
		case <-ctx.Done():
			var names []string
			for _, r := range left.Sorted() {
				names = append(names, fmt.Sprintf("%s-%d (adding %v)", r.Topic, r.Partition, r.AddingReplicas))
			}
			return fmt.Errorf("%d partitions still moving, %s: %w (they go on; see mlog cluster describe)", n, strings.Join(names, ", "), ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	set := kadm.TopicsSet{}
	for _, k := range moves {
		set.Add(k.Topic, k.Partition)
	}
	elected, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, set)
	if err != nil {
		return fmt.Errorf("elect preferred leaders: %w", err)
	}
	for _, ps := range elected {
		for p, r := range ps {
			if r.Err != nil && !errors.Is(r.Err, kerr.ElectionNotNeeded) {
				fmt.Fprintf(out, "  %s-%d: preferred leader not elected: %v\n", r.Topic, p, r.Err)
			}
		}
	}
	fmt.Fprintln(out, "done")
	return nil
}

// longTimeout gives a command that waits for replicas to move a longer
// --timeout than the admin commands' 30 s.
func longTimeout(cmd *cobra.Command) {
	fl := cmd.Flags().Lookup("timeout")
	_ = fl.Value.Set("30m")
	fl.DefValue, fl.Usage = fl.Value.String(), "give up waiting after this long (the moves go on)"
}

func printPlan(out io.Writer, cur, plan assignment) {
	for _, k := range changes(cur, plan) {
		fmt.Fprintf(out, "  %s-%d: %v -> %v\n", k.Topic, k.Partition, cur[k], plan[k])
	}
}

func clusterRebalanceCmd() *cobra.Command {
	f := &moveFlags{}
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Spread replicas and preferred leaders evenly over the live brokers (a dry run without --execute)",
		Long: `Plans the fewest replica moves that leave no two live brokers more than
one replica apart, replicas of brokers no longer alive moved first, and
makes each broker the preferred leader of an even share. Without
--execute it prints the plan; with it, it reassigns the partitions
(AlterPartitionReassignments), waits until every new replica has caught
up and joined the ISR, and elects the preferred leaders. Producers and
consumers keep working throughout; a reassignment may be throttled with
mlog cluster alter-config --set follower.replication.throttled.rate=BYTES.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				cur, live, err := currentAssignment(ctx, adm)
				if err != nil {
					return err
				}
				if len(live) == 0 {
					return errors.New("no live broker")
				}
				plan := planRebalance(cur, live)
				out := cmd.OutOrStdout()
				moves := changes(cur, plan)
				fmt.Fprintf(out, "%d partitions over brokers %v: %d to change\n", len(cur), live, len(moves))
				printPlan(out, cur, plan)
				if !f.execute {
					if len(moves) > 0 {
						fmt.Fprintln(out, "dry run: run again with --execute to apply")
					}
					return nil
				}
				return applyPlan(ctx, out, adm, cur, plan)
			})
		},
	}
	f.register(cmd)
	longTimeout(cmd)
	cmd.Flags().BoolVar(&f.execute, "execute", false, "apply the plan (default: print it)")
	return withEnv(cmd)
}

func brokerDecommissionCmd() *cobra.Command {
	f := &moveFlags{}
	cmd := &cobra.Command{
		Use:   "decommission ID",
		Short: "Move every replica off broker ID, then unregister it (it leaves the Raft configuration)",
		Long: `Moves each replica on the broker to the least loaded live broker that
does not hold the partition yet, waits until every move is done, and
unregisters the broker (UnregisterBroker): it leaves the Raft
configuration (a live non-voter takes its vote), and no topic or
reassignment uses it again. Stop the node afterwards. Without --execute it
prints the plan.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id64, err := strconv.ParseInt(strings.TrimPrefix(args[0], "node-"), 10, 32)
			if err != nil || id64 < 0 {
				return fmt.Errorf("broker %q: want its id (3 or node-3)", args[0])
			}
			id := int32(id64)
			return f.run(cmd, func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) error {
				cur, live, err := currentAssignment(ctx, adm)
				if err != nil {
					return err
				}
				if !slices.Contains(live, id) && cur.loads([]int32{id}, false)[id] > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "broker %d is not alive; its replicas move from the others' copies\n", id)
				}
				plan, ok := planDecommission(cur, live, id)
				if !ok {
					return fmt.Errorf("broker %d cannot go: some partition has no live broker left to take its replica (add a broker first)", id)
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "moving %d replicas off %s\n", len(changes(cur, plan)), nodeName(id))
				printPlan(out, cur, plan)
				if !f.execute {
					fmt.Fprintln(out, "dry run: run again with --execute to move them and unregister the broker")
					return nil
				}
				if err := applyPlan(ctx, out, adm, cur, plan); err != nil {
					return err
				}
				req := kmsg.NewPtrUnregisterBrokerRequest()
				req.BrokerID = id
				resp, err := req.RequestWith(ctx, cl)
				if err == nil {
					err = kerr.ErrorForCode(resp.ErrorCode)
					if err != nil && resp.ErrorMessage != nil {
						err = fmt.Errorf("%w: %s", err, *resp.ErrorMessage)
					}
				}
				if err != nil {
					return fmt.Errorf("unregister broker %d: %w", id, err)
				}
				fmt.Fprintf(out, "%s holds no replica and left the Raft configuration: stop it now\n", nodeName(id))
				return nil
			})
		},
	}
	f.register(cmd)
	longTimeout(cmd)
	cmd.Flags().BoolVar(&f.execute, "execute", false, "move the replicas and unregister (default: print the plan)")
	return withEnv(cmd)
}

func clusterElectCmd() *cobra.Command {
	f := &topicFlags{}
	var unclean bool
	cmd := &cobra.Command{
		Use:   "elect-leaders",
		Short: "Make preferred replicas lead (or, with --unclean, elect leaders for leaderless partitions from any live replica)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				how := kadm.ElectPreferredReplica
				if unclean {
					how = kadm.ElectLiveReplica
				}
				var set kadm.TopicsSet
				if f.topic != "" {
					md, err := adm.Metadata(ctx, f.topic)
					if err != nil {
						return err
					}
					set = kadm.TopicsSet{}
					for _, p := range md.Topics[f.topic].Partitions {
						set.Add(f.topic, p.Partition)
					}
				}
				res, err := adm.ElectLeaders(ctx, how, set)
				if err != nil {
					return fmt.Errorf("elect leaders: %w", err)
				}
				out := cmd.OutOrStdout()
				n := 0
				for _, ps := range res {
					for p, r := range ps {
						switch {
						case r.Err == nil:
							n++
						case errors.Is(r.Err, kerr.ElectionNotNeeded):
						default:
							fmt.Fprintf(out, "%s-%d: %v\n", r.Topic, p, r.Err)
						}
					}
				}
				fmt.Fprintf(out, "elected %d leaders\n", n)
				return nil
			})
		},
	}
	f.common(cmd, true)
	cmd.Flags().BoolVar(&unclean, "unclean", false, "elect from outside the ISR where no in-sync replica is alive (may lose acknowledged records)")
	return withEnv(cmd)
}

// configChanges parses --set key=value and --delete key into kadm's form.
func configChanges(set, del []string) ([]kadm.AlterConfig, error) {
	var out []kadm.AlterConfig
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want key=value", kv)
		}
		out = append(out, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	for _, k := range del {
		out = append(out, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	if len(out) == 0 {
		return nil, errors.New("nothing to change: give --set key=value or --delete key")
	}
	return out, nil
}

func alterResult(out io.Writer, what string, res kadm.AlterConfigsResponses, err error) error {
	if err != nil {
		return fmt.Errorf("alter %s: %w", what, err)
	}
	for _, r := range res {
		if r.Err != nil {
			if r.ErrMessage != "" {
				return fmt.Errorf("alter %s: %w: %s", what, r.Err, r.ErrMessage)
			}
			return fmt.Errorf("alter %s: %w", what, r.Err)
		}
	}
	fmt.Fprintf(out, "altered %s\n", what)
	return nil
}

func clusterAlterConfigCmd() *cobra.Command {
	f := &adminFlags{}
	var set, del []string
	var brokerID int32
	cmd := &cobra.Command{
		Use:   "alter-config",
		Short: "Change dynamic broker configs, cluster-wide or for one broker, without a restart",
		Long: `Dynamic broker configs (IncrementalAlterConfigs on a BROKER resource):
  log.retention.ms, log.retention.bytes, log.segment.bytes   defaults for topics that set none
  follower.replication.throttled.rate                         bytes/s a broker's replicas being added by a reassignment may fetch
  auto.leader.rebalance.enable                                move leadership back to preferred replicas (default true)
Cluster-wide by default; --broker ID for one broker.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			changes, err := configChanges(set, del)
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				what := "the cluster-wide broker configs"
				var brokers []int32
				if brokerID >= 0 {
					brokers, what = []int32{brokerID}, fmt.Sprintf("%s's configs", nodeName(brokerID))
				}
				res, err := adm.AlterBrokerConfigs(ctx, changes, brokers...)
				return alterResult(cmd.OutOrStdout(), what, res, err)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&set, "set", nil, "config key=value to set, repeatable")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "config key to remove (back to the default), repeatable")
	cmd.Flags().Int32Var(&brokerID, "broker", -1, "one broker's id (default: the cluster-wide default)")
	return withEnv(cmd)
}
