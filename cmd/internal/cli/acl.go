package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

// ACLCmd is `mlog acl`: access control lists over CreateAcls, DeleteAcls
// and DescribeAcls, with kafka-acls.sh's flags.
func ACLCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Create, delete and list ACLs",
		Long: `Create, delete and list access control lists, as kafka-acls.sh does:

  mlog acl create --allow-principal User:alice --operation read,describe --topic orders-
      --resource-pattern-type prefixed
  mlog acl list --principal User:alice
  mlog acl delete --allow-principal User:alice --topic orders- --resource-pattern-type prefixed

Operations: all, read, write, create, delete, alter, describe, cluster-action,
describe-configs, alter-configs, idempotent-write. With the authorizer on, a
principal without a matching ALLOW is refused, and a DENY beats any ALLOW.`,
	}
	cmd.AddCommand(aclCreateCmd(), aclDeleteCmd(), aclListCmd())
	return cmd
}

type aclFlags struct {
	adminFlags
	allow, deny           []string // principals
	principal             []string // list and delete: either permission
	allowHosts, denyHosts []string
	operations            []string
	topics, groups, txIDs []string
	cluster               bool
	pattern               string
}

func (f *aclFlags) register(cmd *cobra.Command, filter bool) {
	f.adminFlags.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&f.allow, "allow-principal", nil, "principals allowed, as User:NAME (User:* for everyone)")
	fl.StringSliceVar(&f.deny, "deny-principal", nil, "principals denied")
	fl.StringSliceVar(&f.allowHosts, "allow-host", nil, "hosts the allow applies to (default: every host, *)")
	fl.StringSliceVar(&f.denyHosts, "deny-host", nil, "hosts the deny applies to (default: every host, *)")
	fl.StringSliceVar(&f.topics, "topic", nil, "topic resources (* for every topic)")
	fl.StringSliceVar(&f.groups, "group", nil, "consumer group resources")
	fl.StringSliceVar(&f.txIDs, "transactional-id", nil, "transactional id resources")
	fl.BoolVar(&f.cluster, "cluster", false, "the cluster resource")
	if filter {
		fl.StringSliceVar(&f.principal, "principal", nil, "principals, allowed or denied")
		fl.StringSliceVar(&f.operations, "operation", nil, "operations (default: any)")
		fl.StringVar(&f.pattern, "resource-pattern-type", "any", "literal, prefixed, match (every ACL that applies to the named resource) or any")
	} else {
		fl.StringSliceVar(&f.operations, "operation", nil, "operations to allow or deny (required)")
		fl.StringVar(&f.pattern, "resource-pattern-type", "literal", "literal or prefixed")
	}
}

func (f *aclFlags) hasResource() bool {
	return len(f.topics)+len(f.groups)+len(f.txIDs) > 0 || f.cluster
}

// builder turns the flags into kadm's ACL builder; filter is for list and
// delete, where what is not given matches anything.
func (f *aclFlags) builder(filter bool) (*kadm.ACLBuilder, error) {
	pattern, err := acl.ParsePatternType(f.pattern)
	if err != nil {
		return nil, fmt.Errorf("--resource-pattern-type: %w", err)
	}
	b := kadm.NewACLs().ResourcePatternType(kmsg.ACLResourcePatternType(pattern))
	var ops []kadm.ACLOperation
	for _, s := range f.operations {
		op, err := acl.ParseOperation(s)
		if err != nil || op == acl.OpUnknown || (!filter && op == acl.OpAny) {
			return nil, fmt.Errorf("--operation %q: unknown", s)
		}
		ops = append(ops, kmsg.ACLOperation(op))
	}
	if len(ops) == 0 {
		if !filter {
			return nil, errors.New("--operation is required")
		}
		ops = []kadm.ACLOperation{kadm.OpAny}
	}
	b.Operations(ops...)
	switch {
	case f.hasResource():
		b.MaybeTopics(f.topics...).MaybeGroups(f.groups...).MaybeTransactionalIDs(f.txIDs...).MaybeClusters(f.cluster)
	case filter:
		b.AnyResource()
	default:
		return nil, errors.New("name a resource: --topic, --group, --transactional-id or --cluster")
	}
	allow, deny := f.allow, f.deny
	if filter {
		allow, deny = append(allow, f.principal...), append(deny, f.principal...)
		if len(f.allow)+len(f.deny)+len(f.principal) == 0 {
			return b.Allow().AllowHosts(f.allowHosts...).Deny().DenyHosts(f.denyHosts...), nil
		}
	} else if len(allow)+len(deny) == 0 {
		return nil, errors.New("name a principal: --allow-principal or --deny-principal")
	}
	if len(allow) > 0 {
		b.MaybeAllow(allow...).AllowHosts(f.allowHosts...)
	}
	if len(deny) > 0 {
		b.MaybeDeny(deny...).DenyHosts(f.denyHosts...)
	}
	return b, nil
}

func aclLine(out io.Writer, principal, host string, perm kmsg.ACLPermissionType, op kadm.ACLOperation, rt kmsg.ACLResourceType, name string, pattern kadm.ACLPattern) {
	fmt.Fprintf(out, "principal=%s host=%s permission=%s operation=%s resource=%s name=%s pattern=%s\n",
		principal, host, perm, op, rt, name, pattern)
}

func aclCreateCmd() *cobra.Command {
	f := &aclFlags{}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Allow or deny principals operations on resources",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.builder(false)
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				res, err := adm.CreateACLs(ctx, b)
				if err != nil {
					return fmt.Errorf("create ACLs: %w", err)
				}
				var errs []error
				for _, r := range res {
					if r.Err != nil {
						errs = append(errs, fmt.Errorf("%s %s on %s %q: %w %s", r.Principal, r.Operation, r.Type, r.Name, r.Err, r.ErrMessage))
						continue
					}
					fmt.Fprint(cmd.OutOrStdout(), "created ")
					aclLine(cmd.OutOrStdout(), r.Principal, r.Host, r.Permission, r.Operation, r.Type, r.Name, r.Pattern)
				}
				return errors.Join(errs...)
			})
		},
	}
	f.register(cmd, false)
	return withEnv(cmd)
}

func aclDeleteCmd() *cobra.Command {
	f := &aclFlags{}
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete the ACLs the flags select",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !f.hasResource() && len(f.allow)+len(f.deny)+len(f.principal) == 0 {
				return errors.New("name a resource or a principal: deleting every ACL takes both spelled out (--topic '*' ... or --principal ...)")
			}
			b, err := f.builder(true)
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				res, err := adm.DeleteACLs(ctx, b)
				if err != nil {
					return fmt.Errorf("delete ACLs: %w", err)
				}
				var errs []error
				for _, r := range res {
					if r.Err != nil {
						errs = append(errs, fmt.Errorf("%w %s", r.Err, r.ErrMessage))
						continue
					}
					for _, d := range r.Deleted {
						fmt.Fprint(cmd.OutOrStdout(), "deleted ")
						aclLine(cmd.OutOrStdout(), d.Principal, d.Host, d.Permission, d.Operation, d.Type, d.Name, d.Pattern)
					}
				}
				return errors.Join(errs...)
			})
		},
	}
	f.register(cmd, true)
	return withEnv(cmd)
}

func aclListCmd() *cobra.Command {
	f := &aclFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List ACLs (all, or those the flags select)",
		Long: `List ACLs, one line each:
  principal=User:alice host=* permission=ALLOW operation=READ resource=TOPIC name=orders- pattern=PREFIXED`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.builder(true)
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, _ *kgo.Client, adm *kadm.Client) error {
				res, err := adm.DescribeACLs(ctx, b)
				if err != nil {
					return fmt.Errorf("list ACLs: %w", err)
				}
				seen := map[string]bool{}
				for _, r := range res {
					if r.Err != nil {
						return fmt.Errorf("list ACLs: %w %s", r.Err, r.ErrMessage)
					}
					for _, d := range r.Described {
						var line strings.Builder
						aclLine(&line, d.Principal, d.Host, d.Permission, d.Operation, d.Type, d.Name, d.Pattern)
						if !seen[line.String()] { // filters may overlap
							seen[line.String()] = true
							fmt.Fprint(cmd.OutOrStdout(), line.String())
						}
					}
				}
				return nil
			})
		},
	}
	f.register(cmd, true)
	return withEnv(cmd)
}
