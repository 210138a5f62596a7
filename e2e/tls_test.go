package e2e

import (
	"testing"

	"github.com/mlog/mlog/internal/testutil"
)

// `mlog server` with the --tls-* flags as docs/security.md shows them:
// kcat with a certificate from the CA produces and consumes over TLS;
// kcat without one, or trusting another CA, gets nothing.
func TestTLSWithKcat(t *testing.T) {
	kc := kcat(t)
	ca := testutil.NewCA(t, "e2e")
	cert, key := ca.Issue("node-1")
	ccert, ckey := ca.Issue("kcat")
	s := startServer(t, nil, "--data-dir", t.TempDir(),
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-client-ca-file", ca.File)
	tlsArgs := func(caFile string, withCert bool) []string {
		a := []string{"-b", s.addr, "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + caFile}
		if withCert {
			a = append(a, "-X", "ssl.certificate.location="+ccert, "-X", "ssl.key.location="+ckey)
		}
		return a
	}
	// kcat waits for the topic (auto-created by this produce) itself.
	run(t, "a\nb\nc\n", kc, append(tlsArgs(ca.File, true), "-P", "-t", "secure")...)
	out := run(t, "", kc, append(tlsArgs(ca.File, true), "-C", "-t", "secure", "-o", "beginning", "-e", "-c", "3", "-f", "%s\n")...)
	if out != "a\nb\nc\n" {
		t.Fatalf("kcat read %q over TLS, want a, b, c", out)
	}

	if out, err := runErr(kc, append(tlsArgs(ca.File, false), "-L", "-m", "1")...); err == nil {
		t.Fatalf("kcat without a client certificate listed metadata:\n%s", out)
	}
	other := testutil.NewCA(t, "other")
	if out, err := runErr(kc, append(tlsArgs(other.File, true), "-L", "-m", "1")...); err == nil {
		t.Fatalf("kcat trusting another CA listed metadata:\n%s", out)
	}
	if out, err := runErr(kc, "-b", s.addr, "-L", "-m", "1"); err == nil {
		t.Fatalf("kcat over plain TCP listed metadata:\n%s", out)
	}
}
