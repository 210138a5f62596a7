package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

// HealthcheckCmd is `mlog healthcheck`: exit 0 when a broker answers a
// Kafka request. Container health checks use it (a scratch image has no nc).
func HealthcheckCmd() *cobra.Command {
	var addr string
	var timeout time.Duration
	var tf tlsFlags
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the broker at --addr answers a Kafka ApiVersions request",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tlsOpts, err := tf.opts()
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, tlsOpts...)...)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return cl.Ping(ctx)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:9094", "broker address")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	tf.register(cmd.Flags())
	return withEnv(cmd)
}
