package acl

// Principals of TLS client certificates, written as Kafka's default
// ssl.principal.mapping.rules write them, so ACLs made for Kafka match.

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"strings"
)

// CertificatePrincipal is the principal of a verified client certificate:
// "User:" and its subject's distinguished name (RFC 2253).
func CertificatePrincipal(cert *x509.Certificate) string {
	return "User:" + distinguishedName(cert.RawSubject)
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
