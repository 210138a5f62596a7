package acl

import (
	"errors"
	"fmt"
	"strings"
)

// ResourceType is what a binding protects (Kafka's numbers).
type ResourceType int8

// Resource types.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
	ResourceDelegationToken ResourceType = 6
	ResourceUser            ResourceType = 7
)

// PatternType is how a binding's resource name matches (KIP-290).
type PatternType int8

// Pattern types. Any and Match appear only in filters.
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1
	PatternMatch    PatternType = 2
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Operation is what a binding allows or denies.
type Operation int8

// Operations. Any appears only in filters.
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
	OpCreateTokens    Operation = 13
	OpDescribeTokens  Operation = 14
)

// Permission says whether a binding allows or denies.
type Permission int8

// Permissions. Any appears only in filters.
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1
	PermissionDeny    Permission = 2
	PermissionAllow   Permission = 3
)

const (
	// ClusterName is the one cluster resource's name.
	ClusterName = "kafka-cluster"
	// Wildcard as a literal resource name matches every resource of its
	// type; as a host, every host; "User:*" matches every principal.
	Wildcard = "*"
	// AnyUser is the principal every user matches.
	AnyUser = "User:*"
	// Anonymous is the principal of a connection that did not
	// authenticate (no SASL, no client certificate).
	Anonymous = "User:ANONYMOUS"
)

// ErrInvalidBinding means a binding or filter that cannot be stored or
// used: a type out of range, a missing name, a principal not in Type:Name
// form.
var ErrInvalidBinding = errors.New("acl: invalid binding")

// Binding is one access control entry on a resource pattern.
type Binding struct {
	ResourceType ResourceType `json:"resource_type"`
	ResourceName string       `json:"resource_name"`
	PatternType  PatternType  `json:"pattern_type"`
	Principal    string       `json:"principal"`
	Host         string       `json:"host"`
	Operation    Operation    `json:"operation"`
	Permission   Permission   `json:"permission"`
}

func (b Binding) String() string {
	return fmt.Sprintf("%s %s %s on %s %s %q from host %s", b.Principal, b.Permission, b.Operation, b.PatternType, b.ResourceType, b.ResourceName, b.Host)
}

// Validate checks that b can be stored: concrete types, a name, a
// principal of the form Type:Name, a host.
func (b Binding) Validate() error {
	switch {
	case b.ResourceType < ResourceTopic || b.ResourceType > ResourceUser:
		return fmt.Errorf("%w: resource type %d", ErrInvalidBinding, b.ResourceType)
	case b.PatternType != PatternLiteral && b.PatternType != PatternPrefixed:
		return fmt.Errorf("%w: pattern type %d (want literal or prefixed)", ErrInvalidBinding, b.PatternType)
	case b.ResourceName == "":
		return fmt.Errorf("%w: empty resource name", ErrInvalidBinding)
	case b.ResourceType == ResourceCluster && (b.ResourceName != ClusterName || b.PatternType != PatternLiteral):
		return fmt.Errorf("%w: the cluster resource is the literal %q", ErrInvalidBinding, ClusterName)
	case b.Operation < OpAll || b.Operation > OpDescribeTokens:
		return fmt.Errorf("%w: operation %d", ErrInvalidBinding, b.Operation)
	case b.Permission != PermissionAllow && b.Permission != PermissionDeny:
		return fmt.Errorf("%w: permission %d", ErrInvalidBinding, b.Permission)
	case b.Host == "":
		return fmt.Errorf("%w: empty host (use %q for any)", ErrInvalidBinding, Wildcard)
	}
	if kind, name, ok := strings.Cut(b.Principal, ":"); !ok || kind == "" || name == "" {
		return fmt.Errorf("%w: principal %q, want Type:Name such as User:alice", ErrInvalidBinding, b.Principal)
	}
	return nil
}

// Filter selects bindings (DescribeAcls, DeleteAcls). Nil strings and the
// Any values match everything; PatternMatch selects the bindings that
// would apply to the resource named (literal, wildcard and prefixes).
type Filter struct {
	ResourceType ResourceType
	ResourceName *string
	PatternType  PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// Validate checks the filter's enumerations are known values.
func (f Filter) Validate() error {
	switch {
	case f.ResourceType < ResourceAny || f.ResourceType > ResourceUser:
		return fmt.Errorf("%w: resource type %d", ErrInvalidBinding, f.ResourceType)
	case f.PatternType < PatternAny || f.PatternType > PatternPrefixed:
		return fmt.Errorf("%w: pattern type %d", ErrInvalidBinding, f.PatternType)
	case f.Operation < OpAny || f.Operation > OpDescribeTokens:
		return fmt.Errorf("%w: operation %d", ErrInvalidBinding, f.Operation)
	case f.Permission < PermissionAny || f.Permission > PermissionAllow:
		return fmt.Errorf("%w: permission %d", ErrInvalidBinding, f.Permission)
	}
	return nil
}

// Matches reports whether the filter selects b.
func (f Filter) Matches(b Binding) bool {
	switch {
	case f.ResourceType != ResourceAny && f.ResourceType != b.ResourceType:
		return false
	case f.Principal != nil && *f.Principal != b.Principal:
		return false
	case f.Host != nil && *f.Host != b.Host:
		return false
	case f.Operation != OpAny && f.Operation != b.Operation:
		return false
	case f.Permission != PermissionAny && f.Permission != b.Permission:
		return false
	}
	switch f.PatternType {
	case PatternAny:
		return f.ResourceName == nil || *f.ResourceName == b.ResourceName
	case PatternLiteral, PatternPrefixed:
		return f.PatternType == b.PatternType && (f.ResourceName == nil || *f.ResourceName == b.ResourceName)
	case PatternMatch:
		if f.ResourceName == nil {
			return true
		}
		return b.appliesTo(*f.ResourceName)
	}
	return false
}

// appliesTo reports whether the binding's pattern covers the resource
// name.
func (b Binding) appliesTo(name string) bool {
	if b.PatternType == PatternPrefixed {
		return strings.HasPrefix(name, b.ResourceName)
	}
	return b.ResourceName == name || b.ResourceName == Wildcard
}
