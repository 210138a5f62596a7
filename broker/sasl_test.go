package broker_test

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

func saslCluster(t *testing.T, n int) *brokertest.Cluster {
	t.Helper()
	return brokertest.Start(t, n, func(_ int, cfg *broker.Config) {
		cfg.SASLMechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"}
		cfg.BootstrapUser, cfg.BootstrapPassword = "admin", "admin-secret"
	})
}

// saslPing is what a client logging in with mech (nil: no SASL) gets.
func saslPing(t *testing.T, c *brokertest.Cluster, mech sasl.Mechanism) error {
	t.Helper()
	if mech == nil {
		return ping(t, c)
	}
	return ping(t, c, kgo.SASL(mech))
}

// A single node requiring SASL: the bootstrap user logs in with
// SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, produces and consumes; a wrong
// password is refused with SASL_AUTHENTICATION_FAILED, and a client
// without SASL is not served.
func TestSASLSingleNode(t *testing.T) {
	c := saslCluster(t, 1)
	admin := scram.Auth{User: "admin", Pass: "admin-secret"}
	testutil.Eventually(t, "the bootstrap user", func() bool {
		return saslPing(t, c, admin.AsSha512Mechanism()) == nil
	})
	for name, mech := range map[string]sasl.Mechanism{
		"SCRAM-SHA-256": admin.AsSha256Mechanism(),
		"PLAIN":         plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism(),
	} {
		if err := saslPing(t, c, mech); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, mech := range map[string]sasl.Mechanism{
		"SCRAM-SHA-512, wrong password": scram.Auth{User: "admin", Pass: "nope"}.AsSha512Mechanism(),
		"PLAIN, wrong password":         plain.Auth{User: "admin", Pass: "nope"}.AsMechanism(),
		"SCRAM-SHA-256, unknown user":   scram.Auth{User: "mallory", Pass: "x"}.AsSha256Mechanism(),
	} {
		if err := saslPing(t, c, mech); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}
	if err := saslPing(t, c, nil); err == nil {
		t.Error("a client without SASL was served")
	}

	c.ClientOpts = []kgo.Opt{kgo.SASL(admin.AsSha512Mechanism())}
	waitServing(c)
	adm := kadm.NewClient(c.Client())
	if _, err := adm.CreateTopic(ctxT(t), 1, 1, nil, "authed"); err != nil {
		t.Fatal(err)
	}
	want := values(20, "a")
	produceValues(t, c.Client(), "authed", want)
	checkRecords(t, consumeCluster(t, c, "authed", len(want)), want)

	// The bootstrap user (a super user) adds bob; bob logs in, but may
	// neither see nor change credentials.
	res, err := adm.AlterUserSCRAMs(ctxT(t), nil, []kadm.UpsertSCRAM{{User: "bob", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "bob-pw"}})
	if err != nil || res["bob"].Err != nil {
		t.Fatalf("admin adding bob: %+v %v", res, err)
	}
	bob := scram.Auth{User: "bob", Pass: "bob-pw"}.AsSha512Mechanism()
	if err := saslPing(t, c, bob); err != nil {
		t.Fatalf("bob logging in: %v", err)
	}
	bobCl, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...), kgo.SASL(bob)) // not c.Client: its options log in as admin
	if err != nil {
		t.Fatal(err)
	}
	defer bobCl.Close()
	bobAdm := kadm.NewClient(bobCl)
	if _, err := bobAdm.DescribeUserSCRAMs(ctxT(t)); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("bob describing credentials: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	res, err = bobAdm.AlterUserSCRAMs(ctxT(t), []kadm.DeleteSCRAM{{User: "admin", Mechanism: kadm.ScramSha512}}, nil)
	if err == nil && !errors.Is(res["admin"].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("bob deleting admin's credential: %+v, want CLUSTER_AUTHORIZATION_FAILED", res)
	}
	if err := saslPing(t, c, admin.AsSha512Mechanism()); err != nil {
		t.Errorf("admin after bob's attempt: %v", err)
	}
}

// Three brokers requiring SASL replicate and forward to the controller,
// logging in to each other as the bootstrap user.
func TestSASLCluster(t *testing.T) {
	c := saslCluster(t, 3)
	c.ClientOpts = []kgo.Opt{kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism())}
	testutil.Eventually(t, "the bootstrap user", func() bool {
		return saslPing(t, c, scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()) == nil
	})
	waitServing(c)
	if _, err := kadm.NewClient(c.Client()).CreateTopic(ctxT(t), 1, 3, nil, "replicated"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	want := values(30, "r")
	produceValues(t, c.Client(), "replicated", want)
	checkRecords(t, consumeCluster(t, c, "replicated", len(want)), want)
	sameLogs(t, c, "replicated", 0)
}

// With SASL on and the authorizer off (--authorizer none) every user may
// use the topics, but only super users may touch credentials: brokers log
// in with the bootstrap user's.
func TestSASLWithoutAuthorizer(t *testing.T) {
	c := brokertest.Start(t, 1, func(_ int, cfg *broker.Config) {
		cfg.SASLMechanisms = []string{"SCRAM-SHA-512"}
		cfg.BootstrapUser, cfg.BootstrapPassword = "admin", "admin-secret"
		cfg.Authorizer = broker.AuthorizerNone
	})
	testutil.Eventually(t, "the bootstrap user", func() bool { return saslPing(t, c, saslAdmin()) == nil })
	c.ClientOpts = []kgo.Opt{kgo.SASL(saslAdmin())}
	waitServing(c)
	addUser(t, c, "bob")
	bob := userClient(t, c, "bob", kgo.AllowAutoTopicCreation())
	if err := produceErr(t, bob, "free"); err != nil {
		t.Fatalf("bob writing without ACLs: %v", err)
	}
	res, err := kadm.NewClient(bob).AlterUserSCRAMs(ctxT(t), []kadm.DeleteSCRAM{{User: "admin", Mechanism: kadm.ScramSha512}}, nil)
	if err == nil && !errors.Is(res["admin"].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("bob deleting admin's credential with the authorizer off: %+v, want CLUSTER_AUTHORIZATION_FAILED", res)
	}
	if err := saslPing(t, c, saslAdmin()); err != nil {
		t.Errorf("admin after bob's attempt: %v", err)
	}
}
