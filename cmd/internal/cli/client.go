package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mlog/mlog/internal/tlsfiles"
)

// leaderAddr returns host:port of the leader of topic's partition 0, as
// mlog's producer and consumer print it.
func leaderAddr(ctx context.Context, adm *kadm.Client, topic string) (string, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return "", err
	}
	t, ok := md.Topics[topic]
	if !ok || t.Err != nil {
		if ok {
			return "", t.Err
		}
		return "", fmt.Errorf("topic %q not found", topic)
	}
	p, ok := t.Partitions[0]
	if !ok || p.Leader < 0 {
		return "", fmt.Errorf("topic %q has no leader yet", topic)
	}
	for _, b := range md.Brokers {
		if b.NodeID == p.Leader {
			return fmt.Sprintf("%s:%d", b.Host, b.Port), nil
		}
	}
	return "", fmt.Errorf("leader %d of %q not among the brokers", p.Leader, topic)
}

// waitLeader retries leaderAddr until ctx ends.
func waitLeader(ctx context.Context, adm *kadm.Client, topic string) (string, error) {
	for {
		addr, err := leaderAddr(ctx, adm, topic)
		if err == nil {
			return addr, nil
		}
		select {
		case <-ctx.Done():
			return "", errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func seedOpts(addrs string, extra ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(strings.Split(addrs, ",")...), kgo.MetadataMinAge(250 * time.Millisecond)}, extra...)
}

// tlsFlags are the client commands' --tls-* and --sasl-* flags: how they
// connect to brokers that require it.
type tlsFlags struct {
	caFile, certFile, keyFile string
	saslMechanism, saslUser   string
	saslPassword              string
}

func (f *tlsFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.caFile, "tls-ca-file", "", "connect with TLS, trusting these PEM CA certificates (the system's if only --tls-cert-file is set)")
	fl.StringVar(&f.certFile, "tls-cert-file", "", "PEM client certificate, for brokers that require one (mutual TLS)")
	fl.StringVar(&f.keyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fl.StringVar(&f.saslMechanism, "sasl-mechanism", "", "log in with SASL: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (with --sasl-user and --sasl-password)")
	fl.StringVar(&f.saslUser, "sasl-user", "", "SASL user name")
	fl.StringVar(&f.saslPassword, "sasl-password", "", "SASL password (MLOG_SASL_PASSWORD keeps it off the command line)")
}

// saslOpt is the kgo option for the --sasl-* flags; nil without them.
func (f *tlsFlags) saslOpt() (kgo.Opt, error) {
	m, err := f.saslMech()
	if m == nil || err != nil {
		return nil, err
	}
	return kgo.SASL(m), nil
}

// saslMech is the mechanism the --sasl-* flags ask for; nil without them.
func (f *tlsFlags) saslMech() (sasl.Mechanism, error) {
	if f.saslMechanism == "" {
		if f.saslUser != "" || f.saslPassword != "" {
			return nil, errors.New("--sasl-user and --sasl-password need --sasl-mechanism")
		}
		return nil, nil
	}
	if f.saslUser == "" {
		return nil, errors.New("--sasl-mechanism needs --sasl-user (and --sasl-password)")
	}
	switch strings.ToUpper(f.saslMechanism) {
	case "SCRAM-SHA-256":
		return scram.Auth{User: f.saslUser, Pass: f.saslPassword}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: f.saslUser, Pass: f.saslPassword}.AsSha512Mechanism(), nil
	case "PLAIN":
		return plain.Auth{User: f.saslUser, Pass: f.saslPassword}.AsMechanism(), nil
	}
	return nil, fmt.Errorf("--sasl-mechanism %q: want SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", f.saslMechanism)
}

// config is the TLS configuration the flags ask for; nil without any.
func (f *tlsFlags) config() (*tls.Config, error) {
	if f.caFile == "" && f.certFile == "" && f.keyFile == "" {
		return nil, nil
	}
	cfg, err := tlsfiles.Client(f.caFile, f.certFile, f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca-file, --tls-cert-file, --tls-key-file: %w", err)
	}
	return cfg, nil
}

// opts are the kgo options for the flags: none without TLS or SASL.
func (f *tlsFlags) opts() ([]kgo.Opt, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	var out []kgo.Opt
	if cfg != nil {
		out = append(out, kgo.DialTLSConfig(cfg))
	}
	s, err := f.saslOpt()
	if err != nil {
		return nil, err
	}
	if s != nil {
		out = append(out, s)
	}
	return out, nil
}
