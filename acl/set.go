package acl

import "strings"

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

// NewSet indexes bindings; it keeps no reference to the slice.
func NewSet(bindings []Binding) *Set {
	s := &Set{byType: map[ResourceType]*resourceBindings{}}
	for _, b := range bindings {
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
// resource of type rt (Kafka lets a producer with WRITE on any topic be
// idempotent): some ALLOW binding grants it, and no DENY of that
// principal covers every resource of the type (a literal "*" or an empty
// prefix).
func (s *Set) AllowedAny(principal, host string, op Operation, rt ResourceType) bool {
	rb := s.byType[rt]
	if rb == nil {
		return false
	}
	applies := func(b Binding) bool {
		return (b.Principal == principal || b.Principal == AnyUser) && (b.Host == Wildcard || b.Host == host)
	}
	found := false
	visit := func(b Binding) bool {
		if !applies(b) {
			return true
		}
		if b.Permission == PermissionDeny {
			everything := (b.PatternType == PatternLiteral && b.ResourceName == Wildcard) || (b.PatternType == PatternPrefixed && b.ResourceName == "")
			return !(everything && (b.Operation == OpAll || b.Operation == op))
		}
		if grants(b.Operation, op) {
			found = true
		}
		return true
	}
	for _, bs := range rb.literal {
		for _, b := range bs {
			if !visit(b) {
				return false
			}
		}
	}
	for _, b := range rb.prefixed {
		if !visit(b) {
			return false
		}
	}
	return found
}
