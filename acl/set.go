package acl

import (
	"net/netip"
	"strings"
)

// Set is a collection of bindings indexed for authorization: literal
// bindings by resource type and name, prefixed ones by resource type. It
// is read-only once built and safe to share.
type Set struct {
	byType map[ResourceType]*resourceBindings
}

type resourceBindings struct {
	literal  map[string][]Binding // including the wildcard "*"
	prefixed []Binding
}

// NewSet indexes bindings; it keeps no reference to the slice. Hosts that
// are IP addresses are compared in one form (CanonicalHost).
func NewSet(bindings []Binding) *Set {
	s := &Set{byType: map[ResourceType]*resourceBindings{}}
	for _, b := range bindings {
		b.Host = CanonicalHost(b.Host)
		rb := s.byType[b.ResourceType]
		if rb == nil {
			rb = &resourceBindings{literal: map[string][]Binding{}}
			s.byType[b.ResourceType] = rb
		}
		if b.PatternType == PatternPrefixed {
			rb.prefixed = append(rb.prefixed, b)
		} else {
			rb.literal[b.ResourceName] = append(rb.literal[b.ResourceName], b)
		}
	}
	return s
}

// CanonicalHost writes an IP address in one form, so that an ACL naming
// 0:0:0:0:0:0:0:1 (as Java and Kafka's tools write it) matches a client
// at ::1, and an IPv4 client seen through IPv6 matches its IPv4 ACL.
// Anything else is returned as it is.
func CanonicalHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return h
}

// Allowed decides whether principal, connected from host, may perform op
// on the resource of type rt named name: a matching DENY refuses, else a
// matching ALLOW (directly, through ALL, or by implication) grants, else
// it is refused.
func (s *Set) Allowed(principal, host string, op Operation, rt ResourceType, name string) bool {
	rb := s.byType[rt]
	if rb == nil {
		return false
	}
	allowed := false
	check := func(bs []Binding) bool {
		for _, b := range bs {
			if (b.Principal != principal && b.Principal != AnyUser) || (b.Host != Wildcard && b.Host != host) {
				continue
			}
			if b.Permission == PermissionDeny {
				if b.Operation == OpAll || b.Operation == op {
					return false
				}
				continue
			}
			if grants(b.Operation, op) {
				allowed = true
			}
		}
		return true
	}
	if !check(rb.literal[name]) || (name != Wildcard && !check(rb.literal[Wildcard])) {
		return false
	}
	for _, b := range rb.prefixed {
		if strings.HasPrefix(name, b.ResourceName) && !check([]Binding{b}) {
			return false
		}
	}
	return allowed
}

// grants reports whether an ALLOW of granted permits op.
func grants(granted, op Operation) bool {
	switch {
	case granted == OpAll || granted == op:
		return true
	case op == OpDescribe:
		return granted == OpRead || granted == OpWrite || granted == OpDelete || granted == OpAlter
	case op == OpDescribeConfigs:
		return granted == OpAlterConfigs
	}
	return false
}

// AllowedAny reports whether principal may perform op on at least one
// resource of type rt, as Kafka's authorizeByResourceType decides it (a
// producer with WRITE on some topic may be idempotent): a DENY of every
// resource (literal "*") refuses; else some literal ALLOW whose name no
// literal DENY names and no prefixed DENY covers, or some prefixed ALLOW
// no prefixed DENY covers, grants. Implied operations do not count here.
func (s *Set) AllowedAny(principal, host string, op Operation, rt ResourceType) bool {
	rb := s.byType[rt]
	if rb == nil {
		return false
	}
	var allowLit, allowPre []string
	denyLit, denyPre := map[string]bool{}, []string{}
	collect := func(b Binding) {
		if (b.Principal != principal && b.Principal != AnyUser) || (b.Host != Wildcard && b.Host != host) ||
			(b.Operation != op && b.Operation != OpAll) {
			return
		}
		switch {
		case b.Permission == PermissionDeny && b.PatternType == PatternPrefixed:
			denyPre = append(denyPre, b.ResourceName)
		case b.Permission == PermissionDeny:
			denyLit[b.ResourceName] = true
		case b.PatternType == PatternPrefixed:
			allowPre = append(allowPre, b.ResourceName)
		default:
			allowLit = append(allowLit, b.ResourceName)
		}
	}
	for _, bs := range rb.literal {
		for _, b := range bs {
			collect(b)
		}
	}
	for _, b := range rb.prefixed {
		collect(b)
	}
	if denyLit[Wildcard] {
		return false
	}
	coveredByDeny := func(name string) bool {
		for _, p := range denyPre {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	for _, name := range allowLit {
		if name == Wildcard || (!denyLit[name] && !coveredByDeny(name)) {
			return true
		}
	}
	for _, name := range allowPre {
		if !coveredByDeny(name) {
			return true
		}
	}
	return false
}
