package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// UserCmd is `mlog user`: SCRAM users over DescribeUserScramCredentials and
// AlterUserScramCredentials, as kafka-configs --entity-type users does.
func UserCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Create, delete and list SCRAM users"}
	cmd.AddCommand(userCreateCmd(), userDeleteCmd(), userListCmd())
	return cmd
}

var scramMechanisms = map[string]kadm.ScramMechanism{"SCRAM-SHA-256": kadm.ScramSha256, "SCRAM-SHA-512": kadm.ScramSha512}

func parseMechanisms(names []string) ([]kadm.ScramMechanism, error) {
	var out []kadm.ScramMechanism
	for _, n := range names {
		m, ok := scramMechanisms[strings.ToUpper(n)]
		if !ok {
			return nil, fmt.Errorf("--mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", n)
		}
		out = append(out, m)
	}
	return out, nil
}

// userResult is the error of a user's alteration, from the request or the
// user's own result.
func userResult(res kadm.AlteredUserSCRAMs, err error, user string) error {
	if err != nil {
		return err
	}
	r, ok := res[user]
	if !ok {
		return errors.New("the broker did not answer for this user")
	}
	if r.Err != nil && r.ErrMessage != "" {
		return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
	}
	return r.Err
}

func userCreateCmd() *cobra.Command {
	f := &adminFlags{}
	var (
		password   string
		mechanisms []string
		iterations int32
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user, or change its password (SCRAM credentials; the password is never stored)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if password == "" {
				return errors.New("--password is required (MLOG_PASSWORD keeps it off the command line)")
			}
			mechs, err := parseMechanisms(mechanisms)
			if err != nil {
				return err
			}
			var ups []kadm.UpsertSCRAM
			for _, m := range mechs {
				ups = append(ups, kadm.UpsertSCRAM{User: name, Mechanism: m, Iterations: iterations, Password: password})
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				res, err := adm.AlterUserSCRAMs(ctx, nil, ups)
				if err := userResult(res, err, name); err != nil {
					return fmt.Errorf("create user %q: %w", name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %q: %s credentials set\n", name, strings.Join(mechanisms, ", "))
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&password, "password", "", "the user's password (required)")
	cmd.Flags().StringSliceVar(&mechanisms, "mechanism", []string{"SCRAM-SHA-256", "SCRAM-SHA-512"}, "SCRAM mechanisms to set credentials for")
	cmd.Flags().Int32Var(&iterations, "iterations", 8192, "PBKDF2 iterations (4096-16384)")
	return withEnv(cmd)
}

func userDeleteCmd() *cobra.Command {
	f := &adminFlags{}
	var mechanisms []string
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user's SCRAM credentials (all of them unless --mechanism names some)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			mechs, err := parseMechanisms(mechanisms)
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				if len(mechs) == 0 {
					described, err := adm.DescribeUserSCRAMs(ctx, name)
					if err == nil {
						err = described.Error()
					}
					if err != nil {
						return fmt.Errorf("delete user %q: %w", name, err)
					}
					for _, ci := range described[name].CredInfos {
						mechs = append(mechs, ci.Mechanism)
					}
				}
				var dels []kadm.DeleteSCRAM
				for _, m := range mechs {
					dels = append(dels, kadm.DeleteSCRAM{User: name, Mechanism: m})
				}
				res, err := adm.AlterUserSCRAMs(ctx, dels, nil)
				if err := userResult(res, err, name); err != nil {
					return fmt.Errorf("delete user %q: %w", name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %q deleted\n", name)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringSliceVar(&mechanisms, "mechanism", nil, "delete only these mechanisms' credentials")
	return withEnv(cmd)
}

func userListCmd() *cobra.Command {
	f := &adminFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users and their SCRAM mechanisms",
		Long: `List users, one line each:
  user=alice mechanisms=SCRAM-SHA-256(iterations=8192),SCRAM-SHA-512(iterations=8192)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				described, err := adm.DescribeUserSCRAMs(ctx)
				if err != nil {
					return fmt.Errorf("list users: %w", err)
				}
				names := make([]string, 0, len(described))
				for name, d := range described {
					if d.Err != nil && !errors.Is(d.Err, kerr.ResourceNotFound) {
						return fmt.Errorf("list users: %s: %w", name, d.Err)
					}
					names = append(names, name)
				}
				slices.Sort(names)
				for _, name := range names {
					var mechs []string
					for _, ci := range described[name].CredInfos {
						mechs = append(mechs, fmt.Sprintf("%s(iterations=%d)", ci.Mechanism, ci.Iterations))
					}
					slices.Sort(mechs)
					fmt.Fprintf(cmd.OutOrStdout(), "user=%s mechanisms=%s\n", name, strings.Join(mechs, ","))
				}
				return nil
			})
		},
	}
	f.register(cmd)
	return withEnv(cmd)
}
