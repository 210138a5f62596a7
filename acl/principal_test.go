package acl

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

// Certificate subjects become principals as Kafka writes them (Java's
// X500Principal.getName()): reverse encoding order, DC and UID by name,
// multi-valued names joined with +, RFC 2253 escapes, unknown types as
// OID=#hex.
func TestDistinguishedName(t *testing.T) {
	atv := func(oid asn1.ObjectIdentifier, v any) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: oid, Value: v}
	}
	var (
		dc  = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
		uid = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
		o   = asn1.ObjectIdentifier{2, 5, 4, 10}
		ou  = asn1.ObjectIdentifier{2, 5, 4, 11}
		cn  = asn1.ObjectIdentifier{2, 5, 4, 3}
		odd = asn1.ObjectIdentifier{1, 2, 3, 4}
	)
	for _, tc := range []struct {
		seq  pkix.RDNSequence
		want string
	}{
		{pkix.RDNSequence{{atv(dc, "com")}, {atv(ou, "eng")}, {atv(o, "Acme")}, {atv(cn, "alice")}}, "CN=alice,O=Acme,OU=eng,DC=com"},
		{pkix.RDNSequence{{atv(o, "Acme, Inc.")}, {atv(cn, "bob"), atv(uid, "b1")}}, `CN=bob+UID=b1,O=Acme\, Inc.`},
		{pkix.RDNSequence{{atv(cn, " lead ")}}, `CN=\ lead\ `},
		{pkix.RDNSequence{{atv(cn, "#x")}}, `CN=\#x`},
		{pkix.RDNSequence{{atv(odd, "x")}, {atv(cn, "c")}}, "CN=c,1.2.3.4=#130178"},
	} {
		raw, err := asn1.Marshal(tc.seq)
		if err != nil {
			t.Fatal(err)
		}
		if got := distinguishedName(raw); got != tc.want {
			t.Errorf("distinguishedName = %q, want %q", got, tc.want)
		}
	}
}
