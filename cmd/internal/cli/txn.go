package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TxnCmd is `mlog txn`: transactions and producers, over
// ListTransactions, DescribeTransactions and DescribeProducers.
func TxnCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "txn", Short: "List and describe transactions and the producers writing to partitions"}
	cmd.AddCommand(txnListCmd(), txnDescribeCmd(), txnProducersCmd())
	return cmd
}

func txnListCmd() *cobra.Command {
	f := &adminFlags{}
	var states []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List transactional ids and the state of their last transaction",
		Long: `List transactional ids, one line each:
  transactional_id=shop producer_id=1000 state=Ongoing`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				listed, err := adm.ListTransactions(ctx, nil, states)
				if err != nil {
					return fmt.Errorf("list transactions: %w", err)
				}
				for _, t := range listed.Sorted() {
					fmt.Fprintf(cmd.OutOrStdout(), "transactional_id=%s producer_id=%d state=%s\n", t.TxnID, t.ProducerID, t.State)
				}
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringSliceVar(&states, "state", nil, "only these states: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort")
	return withEnv(cmd)
}

func txnDescribeCmd() *cobra.Command {
	f := &adminFlags{}
	cmd := &cobra.Command{
		Use:   "describe TRANSACTIONAL_ID...",
		Short: "Describe transactions: state, producer, timeout, start, partitions",
		Long: `Describe transactions, one line each:
  transactional_id=shop state=Ongoing producer_id=1000 epoch=2 timeout_ms=60000 started=2026-11-30T04:10:00Z partitions=orders-0,orders-1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, ids []string) error {
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				described, err := adm.DescribeTransactions(ctx, ids...)
				if err != nil && len(described) == 0 {
					return fmt.Errorf("describe transactions: %w", err)
				}
				var errs []error
				for _, id := range ids {
					d, ok := described[id]
					switch {
					case !ok:
						errs = append(errs, fmt.Errorf("%s: not described", id))
						continue
					case d.Err != nil:
						errs = append(errs, fmt.Errorf("%s: %w", id, d.Err))
						continue
					}
					started := "-"
					if d.StartTimestamp > 0 {
						started = time.UnixMilli(d.StartTimestamp).UTC().Format(time.RFC3339)
					}
					var parts []string
					for _, tp := range d.Topics.Sorted() {
						for _, p := range tp.Partitions {
							parts = append(parts, fmt.Sprintf("%s-%d", tp.Topic, p))
						}
					}
					fmt.Fprintf(cmd.OutOrStdout(), "transactional_id=%s state=%s producer_id=%d epoch=%d timeout_ms=%d started=%s partitions=%s\n",
						d.TxnID, d.State, d.ProducerID, d.ProducerEpoch, d.TimeoutMillis, started, strings.Join(parts, ","))
				}
				return errors.Join(errs...)
			})
		},
	}
	f.register(cmd)
	return withEnv(cmd)
}

func txnProducersCmd() *cobra.Command {
	f := &adminFlags{}
	var topics []string
	cmd := &cobra.Command{
		Use:   "producers",
		Short: "List the producers each partition's leader remembers, with their open transactions",
		Long: `List producers, one line each:
  topic=orders partition=0 producer_id=1000 epoch=2 last_sequence=41 txn_start_offset=120
(txn_start_offset=-1: no open transaction).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				set := kadm.TopicsSet{}
				if len(topics) > 0 {
					md, err := adm.Metadata(ctx, topics...)
					if err != nil {
						return err
					}
					set = md.Topics.TopicsSet()
				}
				described, err := adm.DescribeProducers(ctx, set)
				if err != nil && len(described) == 0 {
					return fmt.Errorf("describe producers: %w", err)
				}
				var errs []error
				for _, p := range described.SortedPartitions() {
					if p.Err != nil {
						errs = append(errs, fmt.Errorf("%s-%d: %w", p.Topic, p.Partition, p.Err))
						continue
					}
					for _, ap := range p.ActiveProducers.Sorted() {
						fmt.Fprintf(cmd.OutOrStdout(), "topic=%s partition=%d producer_id=%d epoch=%d last_sequence=%d txn_start_offset=%d\n",
							ap.Topic, ap.Partition, ap.ProducerID, ap.ProducerEpoch, ap.LastSequence, ap.CurrentTxnStartOffset)
					}
				}
				return errors.Join(errs...)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringSliceVar(&topics, "topic", nil, "only these topics (default: every topic)")
	return withEnv(cmd)
}
