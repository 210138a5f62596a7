package protocol

// Authorization: with Config.Authorize set, every request is checked
// against the ACLs the backend holds (package acl) for the connection's
// principal and host, as Kafka's AclAuthorizer does with
// allow.everyone.if.no.acl.found=false. Config.SuperUsers may do
// anything. The principal is "User:NAME" for a SASL login, "User:" and
// the certificate's subject distinguished name (RFC 2253, as Kafka's
// default ssl.principal.mapping.rules) for a TLS client certificate, and
// User:ANONYMOUS otherwise. Each handler names the operation and resource
// Kafka names for its API and answers a refusal with Kafka's code
// (TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED).

import (
	"crypto/tls"
	"slices"

	"github.com/mlog/mlog/acl"
)

// principal is who the connection acts as. Safe on any goroutine: the
// fields it reads are written on the reader before the handler runs.
func (c *conn) principal() string {
	if c.sasl.principal != "" {
		return "User:" + c.sasl.principal
	}
	return c.certPrincipal
}

// identify sets the certificate principal once the TLS handshake is done
// (the first request has been read). Reader goroutine only.
func (c *conn) identify() {
	if c.certPrincipal != "" {
		return
	}
	c.certPrincipal = acl.Anonymous
	if tc, ok := c.nc.(*tls.Conn); ok {
		// Only a certificate whose chain was verified names anyone.
		if chains := tc.ConnectionState().VerifiedChains; len(chains) > 0 && len(chains[0]) > 0 {
			c.certPrincipal = acl.CertificatePrincipal(chains[0][0])
		}
	}
}

// host is the client's address without its port, as ACLs name hosts.
func (c *conn) host() string { return c.remoteHost }

// allowed reports whether the connection may perform op on the resource.
func (c *conn) allowed(op acl.Operation, rt acl.ResourceType, name string) bool {
	if !c.s.cfg.Authorize {
		return true
	}
	p := c.principal()
	if slices.Contains(c.s.cfg.SuperUsers, p) {
		return true
	}
	return c.s.backend.ACLs().Allowed(p, c.host(), op, rt, name)
}

// allowedAny reports whether the connection may perform op on some
// resource of type rt.
func (c *conn) allowedAny(op acl.Operation, rt acl.ResourceType) bool {
	if !c.s.cfg.Authorize {
		return true
	}
	p := c.principal()
	return slices.Contains(c.s.cfg.SuperUsers, p) || c.s.backend.ACLs().AllowedAny(p, c.host(), op, rt)
}

// allowedCredentials is allowedCluster for the SCRAM credential APIs,
// except that with the authorizer off a SASL listener still lets only
// super users near credentials: brokers log in with the bootstrap user's.
func (c *conn) allowedCredentials(op acl.Operation) bool {
	if !c.s.cfg.Authorize && c.s.cfg.SASL != nil {
		return slices.Contains(c.s.cfg.SuperUsers, c.principal())
	}
	return c.allowedCluster(op)
}

func (c *conn) allowedCluster(op acl.Operation) bool {
	return c.allowed(op, acl.ResourceCluster, acl.ClusterName)
}

func (c *conn) allowedTopic(op acl.Operation, topic string) bool {
	return c.allowed(op, acl.ResourceTopic, topic)
}

func (c *conn) allowedGroup(op acl.Operation, group string) bool {
	return c.allowed(op, acl.ResourceGroup, group)
}
