package acl

import (
	"errors"
	"testing"
)

func allow(rt ResourceType, pt PatternType, name, principal string, op Operation) Binding {
	return Binding{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: Wildcard, Operation: op, Permission: PermissionAllow}
}

func TestAllowed(t *testing.T) {
	deny := allow(ResourceTopic, PatternLiteral, "orders-secret", "User:alice", OpRead)
	deny.Permission = PermissionDeny
	hostOnly := allow(ResourceTopic, PatternLiteral, "audit", "User:alice", OpWrite)
	hostOnly.Host = "10.0.0.1"
	v6 := allow(ResourceTopic, PatternLiteral, "audit6", "User:alice", OpWrite)
	v6.Host = "0:0:0:0:0:0:0:1" // as Kafka's tools write ::1
	s := NewSet([]Binding{
		allow(ResourceTopic, PatternPrefixed, "orders-", "User:alice", OpRead),
		deny,
		allow(ResourceTopic, PatternLiteral, "*", "User:bob", OpWrite),
		allow(ResourceTopic, PatternLiteral, "shared", AnyUser, OpDescribe),
		allow(ResourceGroup, PatternLiteral, "g", "User:alice", OpAll),
		allow(ResourceCluster, PatternLiteral, ClusterName, "User:ops", OpAlterConfigs),
		hostOnly,
		v6,
	})
	for _, c := range []struct {
		principal, host string
		op              Operation
		rt              ResourceType
		name            string
		want            bool
	}{
		{"User:alice", "h", OpRead, ResourceTopic, "orders-1", true},
		{"User:alice", "h", OpDescribe, ResourceTopic, "orders-1", true}, // READ implies DESCRIBE
		{"User:alice", "h", OpWrite, ResourceTopic, "orders-1", false},
		{"User:alice", "h", OpRead, ResourceTopic, "orders", false}, // the prefix is "orders-"
		{"User:alice", "h", OpRead, ResourceTopic, "xorders-1", false},
		{"User:alice", "h", OpRead, ResourceTopic, "orders-secret", false}, // deny beats allow
		{"User:alice", "h", OpDescribe, ResourceTopic, "orders-secret", true},
		{"User:carol", "h", OpRead, ResourceTopic, "orders-1", false},
		{"User:bob", "h", OpWrite, ResourceTopic, "anything", true}, // wildcard name
		{"User:bob", "h", OpRead, ResourceTopic, "anything", false},
		{"User:zed", "h", OpDescribe, ResourceTopic, "shared", true}, // User:*
		{"User:zed", "h", OpRead, ResourceTopic, "shared", false},
		{"User:alice", "h", OpDelete, ResourceGroup, "g", true}, // ALL
		{"User:alice", "h", OpRead, ResourceGroup, "g2", false},
		{"User:ops", "h", OpDescribeConfigs, ResourceCluster, ClusterName, true}, // ALTER_CONFIGS implies
		{"User:ops", "h", OpAlter, ResourceCluster, ClusterName, false},
		{"User:alice", "10.0.0.1", OpWrite, ResourceTopic, "audit", true},
		{"User:alice", "10.0.0.2", OpWrite, ResourceTopic, "audit", false},
		{"User:alice", CanonicalHost("::1"), OpWrite, ResourceTopic, "audit6", true},
		{"User:alice", CanonicalHost("::ffff:10.0.0.1"), OpWrite, ResourceTopic, "audit", true},
		{"User:alice", "h", OpRead, ResourceTransactionalID, "t", false}, // no bindings of the type
	} {
		if got := s.Allowed(c.principal, c.host, c.op, c.rt, c.name); got != c.want {
			t.Errorf("%s from %s %s %s %q: allowed %v, want %v", c.principal, c.host, c.op, c.rt, c.name, got, c.want)
		}
	}
	if !s.AllowedAny("User:bob", "h", OpWrite, ResourceTopic) || s.AllowedAny("User:alice", "h", OpWrite, ResourceTopic) {
		t.Error("AllowedAny: bob writes to some topic, alice (outside 10.0.0.1) to none")
	}
	denyT := allow(ResourceTopic, PatternLiteral, "t", AnyUser, OpAll)
	denyT.Permission = PermissionDeny
	denyPre := allow(ResourceTopic, PatternPrefixed, "t", "User:bob", OpWrite)
	denyPre.Permission = PermissionDeny
	for name, set := range map[string]*Set{
		"literal deny of the one allowed topic":   NewSet([]Binding{allow(ResourceTopic, PatternLiteral, "t", "User:bob", OpWrite), denyT}),
		"prefixed deny covering a literal allow":  NewSet([]Binding{allow(ResourceTopic, PatternLiteral, "tx", "User:bob", OpWrite), denyPre}),
		"prefixed deny covering a prefixed allow": NewSet([]Binding{allow(ResourceTopic, PatternPrefixed, "tx", "User:bob", OpWrite), denyPre}),
	} {
		if set.AllowedAny("User:bob", "h", OpWrite, ResourceTopic) {
			t.Errorf("AllowedAny with a %s", name)
		}
	}
	if !NewSet([]Binding{allow(ResourceTopic, PatternPrefixed, "s", "User:bob", OpWrite), denyPre}).AllowedAny("User:bob", "h", OpWrite, ResourceTopic) {
		t.Error("AllowedAny: a prefixed allow outside the denied prefix")
	}
	denyAll := allow(ResourceTopic, PatternLiteral, "*", "User:bob", OpAll)
	denyAll.Permission = PermissionDeny
	if NewSet([]Binding{allow(ResourceTopic, PatternLiteral, "t", "User:bob", OpWrite), denyAll}).AllowedAny("User:bob", "h", OpWrite, ResourceTopic) {
		t.Error("AllowedAny ignored a deny of every topic")
	}
}

func TestFilterMatches(t *testing.T) {
	str := func(s string) *string { return &s }
	lit := allow(ResourceTopic, PatternLiteral, "orders", "User:alice", OpRead)
	pre := allow(ResourceTopic, PatternPrefixed, "ord", "User:alice", OpRead)
	wild := allow(ResourceTopic, PatternLiteral, "*", "User:bob", OpWrite)
	grp := allow(ResourceGroup, PatternLiteral, "orders", "User:alice", OpRead)
	all := []Binding{lit, pre, wild, grp}
	for _, c := range []struct {
		name string
		f    Filter
		want []Binding
	}{
		{"any", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, all},
		{"literal name", Filter{ResourceType: ResourceTopic, ResourceName: str("orders"), PatternType: PatternLiteral, Operation: OpAny, Permission: PermissionAny}, []Binding{lit}},
		{"any pattern of a name", Filter{ResourceType: ResourceAny, ResourceName: str("orders"), PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, []Binding{lit, grp}},
		{"match", Filter{ResourceType: ResourceTopic, ResourceName: str("orders"), PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny}, []Binding{lit, pre, wild}},
		{"prefixed", Filter{ResourceType: ResourceTopic, PatternType: PatternPrefixed, Operation: OpAny, Permission: PermissionAny}, []Binding{pre}},
		{"principal and op", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Principal: str("User:bob"), Operation: OpWrite, Permission: PermissionAllow}, []Binding{wild}},
		{"permission", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionDeny}, nil},
	} {
		var got []Binding
		for _, b := range all {
			if c.f.Matches(b) {
				got = append(got, b)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	good := allow(ResourceTopic, PatternLiteral, "t", "User:a", OpRead)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Binding){
		"any resource":     func(b *Binding) { b.ResourceType = ResourceAny },
		"match pattern":    func(b *Binding) { b.PatternType = PatternMatch },
		"empty name":       func(b *Binding) { b.ResourceName = "" },
		"any operation":    func(b *Binding) { b.Operation = OpAny },
		"any permission":   func(b *Binding) { b.Permission = PermissionAny },
		"bare principal":   func(b *Binding) { b.Principal = "alice" },
		"empty host":       func(b *Binding) { b.Host = "" },
		"cluster misnamed": func(b *Binding) { b.ResourceType = ResourceCluster },
	} {
		b := good
		mutate(&b)
		if err := b.Validate(); !errors.Is(err, ErrInvalidBinding) {
			t.Errorf("%s: %v, want ErrInvalidBinding", name, err)
		}
	}
	for _, s := range []string{"read", "Read", "DESCRIBE_CONFIGS", "describe-configs", "DescribeConfigs"} {
		if _, err := ParseOperation(s); err != nil {
			t.Errorf("ParseOperation(%q): %v", s, err)
		}
	}
	if _, err := ParseOperation("fly"); err == nil {
		t.Error("ParseOperation accepted fly")
	}
}
