// Package acl owns access control lists as Kafka defines them (KIP-290
// prefixed patterns included): the binding of a principal and host to an
// operation on a resource, allowed or denied; the filters DescribeAcls and
// DeleteAcls select bindings with; and the decision whether a principal
// may perform an operation on a named resource.
//
// The decision is Kafka's AclAuthorizer with allow.everyone.if.no.acl.found
// false: a matching DENY wins over any ALLOW, a matching ALLOW grants, and
// no matching binding denies. A binding matches a resource when it names
// it literally, names the wildcard "*", or is a prefixed binding whose name
// starts the resource's. An ALLOW of READ, WRITE, DELETE or ALTER implies
// DESCRIBE; an ALLOW of ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL
// matches every operation. Super users and a switched-off authorizer are
// the caller's business.
//
// The numbers of every enumeration are Kafka's wire numbers, so the
// protocol layer converts nothing. The package stores nothing: the cluster
// metadata keeps the bindings (Raft), and a Set is built from them.
package acl
