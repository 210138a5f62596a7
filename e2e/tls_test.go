package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mlog/mlog/internal/testutil"
)

// `mlog server` with the --tls-* flags as docs/security.md shows them:
// kcat with a certificate from the CA produces and consumes over TLS, and
// so do mlog's own commands with their --tls-* flags; kcat without a
// certificate, trusting another CA or in plain TCP, and a healthcheck
// without TLS, get nothing.
func TestTLSWithKcat(t *testing.T) {
	kc := kcat(t)
	ca := testutil.NewCA(t, "e2e")
	cert, key := ca.Issue("node-1")
	ccert, ckey := ca.Issue("kcat")
	s := startServer(t, nil, "--data-dir", t.TempDir(),
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-client-ca-file", ca.File,
		"--super-users", "User:CN=node-1,User:CN=kcat")
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

	// mlog's own client commands with --tls-* (and MLOG_TLS_* variables).
	mtls := []string{"--tls-ca-file", ca.File, "--tls-cert-file", ccert, "--tls-key-file", ckey}
	if out := run(t, "", bin(t, "topic"), append([]string{"list", "--addrs", s.addr}, mtls...)...); !strings.Contains(out, "secure") {
		t.Fatalf("topic list over TLS:\n%s", out)
	}
	if out := run(t, "d\n", bin(t, "producer"), append([]string{"connect", "--addrs", s.addr, "--topic", "secure", "--acks", "all"}, mtls...)...); !strings.Contains(out, "offset=3") {
		t.Fatalf("producer connect over TLS:\n%s", out)
	}
	if out := run(t, "", bin(t, "consumer"), append([]string{"connect", "--addrs", s.addr, "--topic", "secure", "--from-beginning", "--max-messages", "4"}, mtls...)...); !strings.Contains(out, "3\td") {
		t.Fatalf("consumer connect over TLS:\n%s", out)
	}
	mlog := bin(t, "mlog")
	run(t, "", mlog, append([]string{"perf", "produce", "--brokers", s.addr, "--topic", "perf", "--num-records", "100", "--record-size", "10"}, mtls...)...)
	env := exec.Command(mlog, "healthcheck", "--addr", s.addr)
	env.Env = append(os.Environ(), "MLOG_TLS_CA_FILE="+ca.File, "MLOG_TLS_CERT_FILE="+ccert, "MLOG_TLS_KEY_FILE="+ckey)
	if out, err := env.CombinedOutput(); err != nil {
		t.Fatalf("healthcheck with MLOG_TLS_* variables: %v\n%s", err, out)
	}
	if out, err := runErr(mlog, "healthcheck", "--addr", s.addr); err == nil {
		t.Fatalf("healthcheck without TLS succeeded:\n%s", out)
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

// `mlog server --sasl-mechanisms ... --bootstrap-user ...` (SASL_PLAINTEXT):
// kcat logs in with SCRAM-SHA-512 and PLAIN as the bootstrap user, produces
// and consumes; a wrong password gets nothing; mlog's own commands log in
// with --sasl-* and MLOG_SASL_* variables.
func TestSASLWithKcat(t *testing.T) {
	kc := kcat(t)
	s := startServer(t, nil, "--data-dir", t.TempDir(),
		"--sasl-mechanisms", "SCRAM-SHA-512,PLAIN", "--bootstrap-user", "admin:s3cret")
	login := func(mech, password string) []string {
		return []string{"-b", s.addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech,
			"-X", "sasl.username=admin", "-X", "sasl.password=" + password}
	}
	// The controller creates the bootstrap user once elected: retry the
	// first login.
	testutil.Eventually(t, "kcat logged in with SCRAM-SHA-512", func() bool {
		_, err := runErr(kc, append(login("SCRAM-SHA-512", "s3cret"), "-L", "-m", "2")...)
		return err == nil
	})
	run(t, "a\nb\n", kc, append(login("SCRAM-SHA-512", "s3cret"), "-P", "-t", "authed")...)
	out := run(t, "", kc, append(login("PLAIN", "s3cret"), "-C", "-t", "authed", "-o", "beginning", "-e", "-c", "2", "-f", "%s\n")...)
	if out != "a\nb\n" {
		t.Fatalf("kcat read %q, want a, b", out)
	}
	for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
		if out, err := runErr(kc, append(login(mech, "wrong"), "-L", "-m", "2")...); err == nil {
			t.Fatalf("kcat with a wrong %s password listed metadata:\n%s", mech, out)
		}
	}
	msasl := []string{"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin"}
	cmd := exec.Command(bin(t, "topic"), append([]string{"list", "--addrs", s.addr}, msasl...)...)
	cmd.Env = append(os.Environ(), "MLOG_SASL_PASSWORD=s3cret")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "authed") {
		t.Fatalf("topic list with --sasl-* and MLOG_SASL_PASSWORD: %v\n%s", err, out)
	}
	if out, err := runErr(bin(t, "topic"), append([]string{"list", "--addrs", s.addr, "--timeout", "3s", "--sasl-password", "wrong"}, msasl...)...); err == nil {
		t.Fatalf("topic list with a wrong password:\n%s", out)
	}
}
