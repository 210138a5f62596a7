package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlog/mlog/internal/testutil"
)

// Users and ACLs managed with `mlog user` and `mlog acl` on a server that
// requires SASL, checked with kcat logging in with each mechanism:
// a new user without ACLs is refused; an ACL lets it write (SCRAM-SHA-256)
// and read (PLAIN, SCRAM-SHA-512); deleting the ACL takes that away;
// deleting the user stops its logins.
func TestUsersAndACLsCommands(t *testing.T) {
	kc := kcat(t)
	s := startServer(t, nil, "--data-dir", t.TempDir(),
		"--sasl-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN", "--bootstrap-user", "admin:s3cret")
	mlog := bin(t, "mlog")
	admin := func(args ...string) string {
		t.Helper()
		return run(t, "", mlog, append(args, "--addrs", s.addr, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin", "--sasl-password", "s3cret")...)
	}
	kcatAs := func(user, password, mech string) []string {
		return []string{"-b", s.addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech,
			"-X", "sasl.username=" + user, "-X", "sasl.password=" + password}
	}
	testutil.Eventually(t, "the bootstrap user", func() bool {
		_, err := runErr(kc, append(kcatAs("admin", "s3cret", "SCRAM-SHA-512"), "-L", "-m", "2")...)
		return err == nil
	})
	admin("topic", "create", "--topic", "orders")
	if out := admin("user", "create", "alice", "--password", "alice-pw"); !strings.Contains(out, `user "alice"`) {
		t.Fatalf("user create: %s", out)
	}
	if out := admin("user", "list"); !strings.Contains(out, "user=alice mechanisms=SCRAM-SHA-256(iterations=8192),SCRAM-SHA-512(iterations=8192)") || !strings.Contains(out, "user=admin") {
		t.Fatalf("user list:\n%s", out)
	}

	msgFile := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(msgFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// refused reports whether kcat failed to consume (-C) or produce (-P,
	// the file as one message) for lack of authorization.
	refused := func(mode string) bool {
		t.Helper()
		args := append(kcatAs("alice", "alice-pw", "SCRAM-SHA-256"), mode, "-t", "orders")
		if mode == "-C" {
			args = append(args, "-o", "beginning", "-e", "-c", "1")
		} else {
			args = append(args, msgFile)
		}
		out, err := runErr(kc, args...)
		return err != nil && strings.Contains(out, "Topic authorization failed")
	}
	if !refused("-C") || !refused("-P") {
		t.Fatal("alice read or wrote orders without an ACL, or kcat did not say TOPIC_AUTHORIZATION_FAILED")
	}
	if out := run(t, "", mlog, "--help"); !strings.Contains(out, "acl") || !strings.Contains(out, "user") {
		t.Fatalf("mlog --help lacks user and acl:\n%s", out)
	}

	out := admin("acl", "create", "--allow-principal", "User:alice", "--operation", "write,read", "--topic", "orders")
	if strings.Count(out, "created principal=User:alice") != 2 {
		t.Fatalf("acl create:\n%s", out)
	}
	if out := admin("acl", "list", "--principal", "User:alice"); strings.Count(out, "principal=User:alice host=* permission=ALLOW") != 2 ||
		!strings.Contains(out, "operation=WRITE resource=TOPIC name=orders pattern=LITERAL") {
		t.Fatalf("acl list:\n%s", out)
	}
	run(t, "one\ntwo\n", kc, append(kcatAs("alice", "alice-pw", "SCRAM-SHA-256"), "-P", "-t", "orders")...)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-512"} {
		got := run(t, "", kc, append(kcatAs("alice", "alice-pw", mech), "-C", "-t", "orders", "-o", "beginning", "-e", "-c", "2", "-f", "%s\n")...)
		if got != "one\ntwo\n" {
			t.Fatalf("alice reading with %s: %q", mech, got)
		}
	}

	if out := admin("acl", "delete", "--allow-principal", "User:alice", "--topic", "orders"); strings.Count(out, "deleted principal=User:alice") != 2 {
		t.Fatalf("acl delete:\n%s", out)
	}
	testutil.Eventually(t, "alice refused again", func() bool { return refused("-C") && refused("-P") })

	admin("user", "delete", "alice")
	if out, err := runErr(kc, append(kcatAs("alice", "alice-pw", "SCRAM-SHA-512"), "-L", "-m", "2")...); err == nil {
		t.Fatalf("a deleted user listed metadata:\n%s", out)
	}
	if out := admin("user", "list"); strings.Contains(out, "alice") {
		t.Fatalf("user list after delete:\n%s", out)
	}
}

// `mlog server --listeners` with two listeners in Kafka's form: SASL on
// the first (also the inter-broker one), an open EXTERNAL one (mapped to
// PLAINTEXT) advertised as localhost. kcat's metadata names the broker
// by the address of the listener it asked on; EXTERNAL's clients are
// User:ANONYMOUS and read what an ACL grants that principal.
func TestListenersWithKcat(t *testing.T) {
	kc := kcat(t)
	sasl, ext := freePort(t), freePort(t)
	s := startServer(t, nil, "--data-dir", t.TempDir(), "--rpc-port", fmt.Sprint(sasl),
		"--listeners", fmt.Sprintf("SASL_PLAINTEXT://127.0.0.1:%d,EXTERNAL://127.0.0.1:%d", sasl, ext),
		"--listener-security-protocol-map", "EXTERNAL:PLAINTEXT",
		"--advertised-listeners", fmt.Sprintf("EXTERNAL://localhost:%d", ext),
		"--sasl-mechanisms", "SCRAM-SHA-512", "--bootstrap-user", "admin:s3cret")
	admin := []string{"-b", s.addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=admin", "-X", "sasl.password=s3cret"}
	var meta string
	testutil.Eventually(t, "kcat logged in on the SASL listener", func() bool {
		out, err := runErr(kc, append(admin, "-L")...)
		meta = out
		return err == nil
	})
	if want := fmt.Sprintf("broker 1 at 127.0.0.1:%d", sasl); !strings.Contains(meta, want) {
		t.Fatalf("metadata on the SASL listener lacks %q:\n%s", want, meta)
	}
	run(t, "hello\n", kc, append(admin, "-P", "-t", "open")...)

	anon := []string{"-b", fmt.Sprintf("127.0.0.1:%d", ext)}
	out := run(t, "", kc, append(anon, "-L")...)
	if want := fmt.Sprintf("broker 1 at localhost:%d", ext); !strings.Contains(out, want) || !strings.Contains(out, " 0 topics") {
		t.Fatalf("metadata on EXTERNAL: want %q and no topics (no ACL yet):\n%s", want, out)
	}
	run(t, "", bin(t, "mlog"), "acl", "create", "--allow-principal", "User:ANONYMOUS", "--operation", "read", "--topic", "open",
		"--addrs", s.addr, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin", "--sasl-password", "s3cret")
	testutil.Eventually(t, "an anonymous read on EXTERNAL", func() bool {
		out, err := runErr(kc, append(anon, "-C", "-t", "open", "-o", "beginning", "-e", "-c", "1", "-f", "%s\n")...)
		return err == nil && strings.HasPrefix(out, "hello\n")
	})
}
