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
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"slices"
	"strings"

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
			c.certPrincipal = "User:" + distinguishedName(chains[0][0].RawSubject)
		}
	}
}

// attributeNames are the attribute types RFC 2253 (and Java's
// X500Principal, which Kafka's principals come from) write by name.
var attributeNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C",
	"2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

// distinguishedName writes a certificate subject as Kafka's default
// principal mapping does (X500Principal.getName(), RFC 2253): the
// relative names in reverse order of their encoding, most specific first,
// multi-valued ones joined with "+", known types by name, others as
// OID=#hex of their encoding.
func distinguishedName(raw []byte) string {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &seq); err != nil || len(rest) > 0 {
		return ""
	}
	rdns := make([]string, 0, len(seq))
	for i := len(seq) - 1; i >= 0; i-- {
		var parts []string
		for _, atv := range seq[i] {
			oid := atv.Type.String()
			name, known := attributeNames[oid]
			s, isString := atv.Value.(string)
			if !known || !isString {
				der, err := asn1.Marshal(atv.Value)
				if err != nil {
					return ""
				}
				parts = append(parts, oid+"=#"+hex.EncodeToString(der))
				continue
			}
			parts = append(parts, name+"="+escapeDNValue(s))
		}
		rdns = append(rdns, strings.Join(parts, "+"))
	}
	return strings.Join(rdns, ",")
}

// escapeDNValue escapes an attribute value as RFC 2253 §2.4 asks.
func escapeDNValue(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case strings.ContainsRune(",+\"<>;\\", r),
			r == '#' && i == 0,
			r == ' ' && (i == 0 || i == len(s)-1):
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
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
