package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Execute runs a root command with the process's arguments and exits: 0 on
// success, 1 with one line on stderr on error (never a stack trace), 2 for
// bad usage.
func Execute(root *cobra.Command) {
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetArgs(joinBoolValues(os.Args[1:], boolFlagNames(root)))
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", root.Name(), err)
		os.Exit(1)
	}
}

// Root is `mlog`, with every command under it.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:   "mlog",
		Short: "mlog: a small, fast, replicated log that speaks the Kafka protocol",
		Long: `mlog is a Kafka-style distributed log. Its broker speaks the Apache Kafka
wire protocol, so kcat, franz-go, sarama, kafka-go and kafka-python work with it.

Every flag can also be set with an MLOG_<FLAG> environment variable
(--node-id is MLOG_NODE_ID); the command line wins.`,
	}
	root.AddCommand(ServerCmd(), ProducerCmd(), ConsumerCmd(), TopicCmd(), UserCmd(), ACLCmd(), TxnCmd(), ClusterCmd(), BrokerCmd(), PerfCmd(), HealthcheckCmd(), VerifyCmd())
	return root
}
