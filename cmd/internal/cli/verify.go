package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mlog/mlog/verify"
)

// VerifyCmd is `mlog verify`: a workload against any Kafka-compatible
// cluster and a checker that fails when an acknowledged record is lost,
// duplicated or reordered (package verify does the work).
func VerifyCmd() *cobra.Command {
	cfg := verify.DefaultConfig()
	var (
		addrs    string
		acks     string
		logLevel string
		asJSON   bool
		tf       tlsFlags
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Produce, consume and read back a topic; fail if an acknowledged record is lost",
		Long: `verify runs producers that write unique values and record every outcome,
plain and group consumers that record every record they poll, then reads
every partition back from its start to its high watermark (and from every
replica, where the cluster serves follower reads) and checks the history:
lost, duplicated, multi-value-offset, vanished, reordered, poll-skip and
divergent replicas. It works against any Kafka-compatible cluster.

Exit status: 0 when there is no violation, 1 on any violation (after the
summary) or when the run cannot happen (bad flags, unreachable cluster).
See docs/verify.md.`,
		Example: `  mlog verify --addrs 127.0.0.1:9094 --duration 30s --rate 1000
  mlog verify --addrs kafka-1:9092,kafka-2:9092 --topic verify --json
  mlog verify --topic verify --check-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Acks, err = verify.ParseAcks(acks); err != nil {
				return fmt.Errorf("--acks %q: want all, 1 or 0", acks)
			}
			if cfg.Acks != verify.AcksAll && !cmd.Flags().Changed("idempotent") {
				cfg.Idempotent = false // Kafka's rule: idempotence needs acks=all
			}
			if !cmd.Flags().Changed("min-insync-replicas") && cfg.MinInsyncReplicas > int(cfg.ReplicationFactor) {
				cfg.MinInsyncReplicas = int(cfg.ReplicationFactor) // --replication-factor 1 alone works
			}
			if cfg.TLS, err = tf.config(); err != nil {
				return err
			}
			if cfg.SASL, err = tf.saslMech(); err != nil {
				return err
			}
			cfg.Seeds = nil
			for _, a := range strings.Split(addrs, ",") {
				cfg.Seeds = append(cfg.Seeds, strings.TrimSpace(a))
			}
			if cfg.Logger, err = newLogger(cmd.ErrOrStderr(), logLevel, "text"); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r, err := verify.Run(ctx, cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				err = r.WriteJSON(out)
			} else {
				err = r.WriteText(out)
			}
			if err != nil {
				return err
			}
			if !r.OK() {
				if r.Violations() == 0 {
					return fmt.Errorf("verify %s: %s", cfg.Topic, r.FinalRead)
				}
				return fmt.Errorf("verify %s: %d violations", cfg.Topic, r.Violations())
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addrs, "addrs", "127.0.0.1:9094", "comma-separated broker addresses")
	fl.StringVar(&cfg.Topic, "topic", cfg.Topic, "topic to create (or reuse) and check")
	fl.Int32Var(&cfg.Partitions, "partitions", cfg.Partitions, "partitions of a created topic")
	fl.Int16Var(&cfg.ReplicationFactor, "replication-factor", cfg.ReplicationFactor, "replication factor of a created topic")
	fl.IntVar(&cfg.MinInsyncReplicas, "min-insync-replicas", cfg.MinInsyncReplicas, "min.insync.replicas of a created topic (0: the cluster's default)")
	fl.IntVar(&cfg.Producers, "producers", cfg.Producers, "producer clients")
	fl.IntVar(&cfg.Consumers, "consumers", cfg.Consumers, "plain consumers of every partition")
	fl.IntVar(&cfg.GroupConsumers, "group-consumers", cfg.GroupConsumers, "members of one consumer group")
	fl.StringVar(&acks, "acks", string(cfg.Acks), "all, 1 or 0")
	fl.BoolVar(&cfg.Idempotent, "idempotent", cfg.Idempotent, "idempotent producers (needs --acks all; off by default with --acks 1 or 0)")
	fl.BoolVar(&cfg.Transactional, "transactional", false, "transactional producers (1 to --txn-max-records records per transaction, a tenth aborted); consumers and the final read use read_committed and check that no aborted record is visible and every transaction is whole")
	fl.IntVar(&cfg.TxnMaxRecords, "txn-max-records", cfg.TxnMaxRecords, "most records per transaction with --transactional")
	fl.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to produce")
	fl.IntVar(&cfg.Rate, "rate", cfg.Rate, "records per second over all producers (0: unlimited)")
	fl.IntVar(&cfg.RecordSize, "record-size", cfg.RecordSize, "bytes per value")
	fl.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed for the values' padding and partitions")
	fl.DurationVar(&cfg.FinalReadTimeout, "final-read-timeout", cfg.FinalReadTimeout, "how long the final read and the replica comparison may retry")
	fl.BoolVar(&cfg.CheckOnly, "check-only", false, "produce nothing: only read the topic back and compare replicas")
	fl.BoolVar(&asJSON, "json", false, "print one JSON object instead of the summary")
	fl.StringVar(&logLevel, "log-level", "warn", "progress logs on stderr: debug, info, warn or error")
	tf.register(fl)
	return withEnv(cmd)
}
