package broker_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/internal/testutil"
)

// SCRAM credentials through kadm (AlterUserScramCredentials and
// DescribeUserScramCredentials, KIP-554): created, described, refused as
// Kafka refuses them, kept as RFC 5802's stored and server keys (never
// the password), and still there after a restart.
func TestScramCredentials(t *testing.T) {
	c, b := startOne(t)
	adm := admin(t, b)
	ctx := ctxT(t)
	salt := []byte("0123456789abcdef")
	salted, err := pbkdf2.Key(sha256.New, "alice-secret", salt, 8192, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 8192, Salt: salt, SaltedPassword: salted},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := res["alice"].Err; e != nil {
		t.Fatalf("alice: %v", e)
	}
	// What kadm would refuse before sending, the broker refuses too.
	raw := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	for _, u := range []struct {
		name       string
		mech       int8
		iterations int32
	}{{"bob", cluster.ScramSHA512, 100}, {"dave", 3, 8192}} {
		up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = u.name, u.mech, u.iterations, salt, salted
		raw.Upsertions = append(raw.Upsertions, up)
	}
	rr := dialRaw(t, b).send(raw).(*kmsg.AlterUserSCRAMCredentialsResponse).Results
	if len(rr) != 2 || rr[0].ErrorCode != kerr.UnacceptableCredential.Code || rr[1].ErrorCode != kerr.UnsupportedSaslMechanism.Code {
		t.Fatalf("bob with 100 iterations, dave with mechanism 3: %+v, want UNACCEPTABLE_CREDENTIAL and UNSUPPORTED_SASL_MECHANISM", rr)
	}

	// What is kept: the salt, iterations and RFC 5802's keys.
	cred, ok := b.ScramCredential("alice", cluster.ScramSHA256)
	if !ok {
		t.Fatal("alice's credential not in the metadata")
	}
	mac := func(msg string) []byte {
		m := hmac.New(sha256.New, salted)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(mac("Client Key"))
	if !bytes.Equal(cred.StoredKey, stored[:]) || !bytes.Equal(cred.ServerKey, mac("Server Key")) || !bytes.Equal(cred.Salt, salt) || cred.Iterations != 8192 {
		t.Fatalf("kept %+v, want the salt, 8192 and the stored and server keys of the salted password", cred)
	}

	described := func() kadm.DescribedUserSCRAMs {
		t.Helper()
		d, err := adm.DescribeUserSCRAMs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := described(); len(d) != 1 || len(d["alice"].CredInfos) != 1 || d["alice"].CredInfos[0].Iterations != 8192 || d["alice"].CredInfos[0].Mechanism != kadm.ScramSha256 {
		t.Fatalf("described %+v, want alice with SCRAM-SHA-256 at 8192 iterations", d)
	}
	if d, err := adm.DescribeUserSCRAMs(ctx, "nobody"); err != nil || !errors.Is(d["nobody"].Err, kerr.ResourceNotFound) {
		t.Fatalf("describing a user without credentials: %+v %v, want RESOURCE_NOT_FOUND", d, err)
	}
	res, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "alice", Mechanism: kadm.ScramSha512}}, nil)
	if err != nil || !errors.Is(res["alice"].Err, kerr.ResourceNotFound) {
		t.Fatalf("deleting a credential alice lacks: %+v %v, want RESOURCE_NOT_FOUND", res, err)
	}

	b = restart(c, 0)
	adm = admin(t, b)
	if d := described(); len(d["alice"].CredInfos) != 1 {
		t.Fatalf("after a restart: %+v", d)
	}
	res, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "alice", Mechanism: kadm.ScramSha256}}, nil)
	if err != nil || res["alice"].Err != nil {
		t.Fatalf("deleting alice: %+v %v", res, err)
	}
	if d := described(); len(d) != 0 {
		t.Fatalf("described %+v after deleting the only user", d)
	}
}

// A broker that is not the controller forwards AlterUserScramCredentials;
// the change reaches every broker's metadata.
func TestScramCredentialsForwarded(t *testing.T) {
	c := brokertest.Start(t, 3)
	waitServing(c)
	var other *broker.Broker
	for _, b := range c.Brokers {
		if !broker.IsController(b) {
			other = b
			break
		}
	}
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = "carol", cluster.ScramSHA512, 4096, []byte("salt"), bytes.Repeat([]byte{7}, 64)
	req.Upsertions = append(req.Upsertions, up, up) // named twice: refused as a duplicate
	resp := dialRaw(t, other).send(req).(*kmsg.AlterUserSCRAMCredentialsResponse)
	if len(resp.Results) != 1 || resp.Results[0].ErrorCode != kerr.DuplicateResource.Code {
		t.Fatalf("carol twice: %+v, want one DUPLICATE_RESOURCE result", resp.Results)
	}
	req.Upsertions = req.Upsertions[:1]
	resp = dialRaw(t, other).send(req).(*kmsg.AlterUserSCRAMCredentialsResponse)
	if len(resp.Results) != 1 || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("carol through a follower: %+v", resp.Results)
	}
	testutil.Eventually(t, "carol's credential on every broker", func() bool {
		for _, b := range c.Brokers {
			if _, ok := b.ScramCredential("carol", cluster.ScramSHA512); !ok {
				return false
			}
		}
		return true
	})
}
