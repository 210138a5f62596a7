package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envName is the environment variable for a flag: MLOG_NODE_ID for
// --node-id.
func envName(flag string) string {
	return "MLOG_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its MLOG_
// variable. Repeatable flags take a comma-separated list.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		vals := []string{v}
		if f.Value.Type() == "stringArray" {
			vals = strings.Split(v, ",")
		}
		for _, one := range vals {
			if serr := fs.Set(f.Name, strings.TrimSpace(one)); serr != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, serr)
				return
			}
		}
	})
	return err
}

// joinBoolValues turns `--flag true` / `--flag false` into `--flag=true`, so
// Compose files written as `"--bootstrap", "true"` work with cobra's bool
// flags, which otherwise take the next word as a stray argument.
func joinBoolValues(args []string, boolFlags []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimPrefix(a, "--")
		if strings.HasPrefix(a, "--") && slices.Contains(boolFlags, name) && i+1 < len(args) {
			if v := strings.ToLower(args[i+1]); v == "true" || v == "false" {
				out = append(out, a+"="+v)
				i++
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// boolFlagNames lists the bool flags of a command tree.
func boolFlagNames(cmd *cobra.Command) []string {
	var names []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() == "bool" {
				names = append(names, f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd)
	return names
}

// withEnv makes a command read MLOG_ variables before it runs.
func withEnv(cmd *cobra.Command) *cobra.Command {
	if !strings.Contains(cmd.Long, "MLOG_") {
		if cmd.Long == "" {
			cmd.Long = cmd.Short + "."
		}
		cmd.Long = strings.TrimSpace(cmd.Long) + "\n\nEvery flag can also be set with an MLOG_<FLAG> environment variable\n(--addrs is MLOG_ADDRS); the command line wins."
	}
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if err := applyEnv(c.Flags()); err != nil {
			return err
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	return cmd
}
