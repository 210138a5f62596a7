package acl

import (
	"fmt"
	"strings"
)

var resourceNames = map[ResourceType]string{ResourceUnknown: "unknown", ResourceAny: "any", ResourceTopic: "topic",
	ResourceGroup: "group", ResourceCluster: "cluster", ResourceTransactionalID: "transactional-id",
	ResourceDelegationToken: "delegation-token", ResourceUser: "user"}

var patternNames = map[PatternType]string{PatternUnknown: "unknown", PatternAny: "any", PatternMatch: "match",
	PatternLiteral: "literal", PatternPrefixed: "prefixed"}

var operationNames = map[Operation]string{OpUnknown: "unknown", OpAny: "any", OpAll: "all", OpRead: "read",
	OpWrite: "write", OpCreate: "create", OpDelete: "delete", OpAlter: "alter", OpDescribe: "describe",
	OpClusterAction: "cluster-action", OpDescribeConfigs: "describe-configs", OpAlterConfigs: "alter-configs",
	OpIdempotentWrite: "idempotent-write", OpCreateTokens: "create-tokens", OpDescribeTokens: "describe-tokens"}

var permissionNames = map[Permission]string{PermissionUnknown: "unknown", PermissionAny: "any",
	PermissionDeny: "deny", PermissionAllow: "allow"}

func (t ResourceType) String() string { return nameOf(resourceNames, t) }
func (p PatternType) String() string  { return nameOf(patternNames, p) }
func (o Operation) String() string    { return nameOf(operationNames, o) }
func (p Permission) String() string   { return nameOf(permissionNames, p) }

func nameOf[K ~int8](names map[K]string, k K) string {
	if s, ok := names[k]; ok {
		return s
	}
	return fmt.Sprintf("%d", k)
}

// ParseOperation reads an operation name as the CLI and kafka-acls.sh
// write it: "read", "Write", "describe-configs", "DescribeConfigs",
// "cluster_action" are all accepted.
func ParseOperation(s string) (Operation, error) { return parse(operationNames, "operation", s) }

// ParsePatternType reads a pattern type name (literal, prefixed, match,
// any).
func ParsePatternType(s string) (PatternType, error) { return parse(patternNames, "pattern type", s) }

func parse[K ~int8](names map[K]string, what, s string) (K, error) {
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	}
	for k, name := range names {
		if norm(name) == norm(s) && name != "unknown" {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown %s %q", ErrInvalidBinding, what, s)
}
