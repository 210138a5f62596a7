package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/group"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/storage"
)

// ErrInvalidConfig means a Config failed Validate.
var ErrInvalidConfig = errors.New("broker: invalid config")

// Config is one broker's settings.
type Config struct {
	// NodeID names the node ("node-1"); its trailing number is the Kafka
	// broker id clients see.
	NodeID string
	// DataDir holds every partition's log and the node's metadata.
	DataDir string
	// ListenAddr is the Kafka listener's host:port.
	ListenAddr string
	// HTTPAddr is the host:port of /metrics, /healthz and /readyz; empty
	// for none.
	HTTPAddr string
	// HTTPAddrOptional starts the broker without the HTTP listener, with
	// a warning, when HTTPAddr is already taken (a default address, not
	// one the user asked for).
	HTTPAddrOptional bool
	// HTTPTLS makes the HTTP listener speak TLS with the Kafka listener's
	// certificate (Config.TLS); when TLS names client CAs, a client
	// certificate they signed names the REST request's principal
	// (requests without one are User:ANONYMOUS, and /metrics, /healthz and
	// /readyz stay open to probes).
	HTTPTLS bool
	// AdvertisedAddr is the host:port clients are told to connect to;
	// ListenAddr when empty.
	AdvertisedAddr string
	// Listeners, when set, replace ListenAddr and AdvertisedAddr: one
	// Kafka listener each, with its own security protocol and advertised
	// address (listeners.go).
	Listeners []Listener
	// InterBrokerListener names the listener brokers replicate and
	// forward over (inter.broker.listener.name); the first when empty.
	InterBrokerListener string
	// AutoCreateTopics creates a topic on its first produce or metadata
	// request (auto.create.topics.enable).
	AutoCreateTopics bool
	// DefaultPartitions is num.partitions for auto-created topics and
	// CreateTopics asking for -1.
	DefaultPartitions int32
	// MaxPartitions bounds a topic's partition count: each partition is a
	// directory with preallocated indexes, so one request must not be able
	// to ask for millions.
	MaxPartitions int32
	// OffsetsPartitions is how many partitions __consumer_offsets gets
	// (offsets.topic.num.partitions).
	OffsetsPartitions int32
	// OffsetsReplicationFactor is offsets.topic.replication.factor: the
	// offsets topic is created only once this many brokers are alive
	// (FindCoordinator answers COORDINATOR_NOT_AVAILABLE until then, and
	// clients retry), so it never starts with fewer replicas for good.
	// 0 takes min(3, this node and its configured peers).
	OffsetsReplicationFactor int16
	// OffsetsSegmentBytes is segment.bytes of __consumer_offsets, which is
	// compacted: a closed segment is where compaction can start
	// (offsets.topic.segment.bytes, 100 MiB as in Kafka).
	OffsetsSegmentBytes int64
	// TransactionStatePartitions is how many partitions
	// __transaction_state gets (transaction.state.log.num.partitions).
	TransactionStatePartitions int32
	// TransactionMaxTimeout bounds the timeout a transactional producer
	// may ask for (transaction.max.timeout.ms).
	TransactionMaxTimeout time.Duration
	// TransactionAbortInterval is how often transactions past their
	// timeout are looked for and aborted
	// (transaction.abort.timed.out.transaction.cleanup.interval.ms).
	TransactionAbortInterval time.Duration
	// GroupInitialRebalanceDelay holds an empty group's first rebalance
	// back (group.initial.rebalance.delay.ms).
	GroupInitialRebalanceDelay time.Duration
	// SyncAcks answers acks=1/all produces after fsync (group commit); off
	// trusts the page cache, as Kafka does (--fsync=never).
	SyncAcks bool
	// MaxRequestBytes closes connections sending bigger frames.
	MaxRequestBytes int32
	// TLS, when set, makes the Kafka listener speak TLS; with ClientAuth
	// set, clients (other brokers too) must present certificates.
	TLS *tls.Config
	// PeerTLS, when set, is how this broker connects to the others' Kafka
	// listeners (replication, forwarding to the controller): the CAs it
	// trusts and the certificate it presents. Set whenever TLS is.
	PeerTLS *tls.Config
	// SASLMechanisms, when not empty, make the Kafka listener require SASL
	// authentication with one of them (PLAIN, SCRAM-SHA-256,
	// SCRAM-SHA-512).
	SASLMechanisms []string
	// BootstrapUser and BootstrapPassword: on a cluster with no users
	// yet, the controller gives this user SCRAM credentials. Brokers log
	// in to each other as this user (SCRAM-SHA-512) when SASL is on, so
	// every broker needs the same.
	BootstrapUser, BootstrapPassword string
	// Authorizer turns ACL enforcement on or off: AuthorizerAuto (the
	// default) enforces ACLs whenever clients authenticate (SASL or client
	// certificates); AuthorizerACL always; AuthorizerNone never.
	Authorizer string
	// SuperUsers are principals ("User:alice") that may do anything,
	// Kafka's super.users; the bootstrap user always is one.
	SuperUsers []string
	// ShutdownGrace is how long Close lets responses in flight be written
	// to clients that are slow to read them.
	ShutdownGrace time.Duration
	// RetentionCheckInterval is how often retention runs
	// (log.retention.check.interval.ms).
	RetentionCheckInterval time.Duration
	// Cluster is how the broker takes part in its cluster (Serf, Raft,
	// replication); with no peers it is a one-node cluster.
	Cluster ClusterConfig
	// Log is the default for every partition's log (topic configs override).
	Log storage.Config
	// Logger receives the broker's logs.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults `mlog server` runs with.
func DefaultConfig() Config {
	return Config{
		NodeID:                     "node-1",
		DataDir:                    "/tmp/mlog",
		ListenAddr:                 "127.0.0.1:9094",
		Authorizer:                 AuthorizerAuto,
		AutoCreateTopics:           true,
		DefaultPartitions:          1,
		MaxPartitions:              10000,
		OffsetsPartitions:          16,
		OffsetsSegmentBytes:        100 << 20,
		TransactionStatePartitions: 16,
		TransactionMaxTimeout:      15 * time.Minute,
		TransactionAbortInterval:   10 * time.Second,
		GroupInitialRebalanceDelay: group.DefaultConfig().InitialRebalanceDelay,
		SyncAcks:                   true,
		MaxRequestBytes:            100 << 20,
		RetentionCheckInterval:     5 * time.Minute,
		ShutdownGrace:              5 * time.Second,
		Cluster:                    DefaultClusterConfig(),
		Log:                        storage.DefaultConfig(),
	}
}

// Authorizer settings.
const (
	AuthorizerAuto = "auto"
	AuthorizerACL  = "acl"
	AuthorizerNone = "none"
)

// clientCerts reports whether TLS listeners require client certificates.
func (c *Config) clientCerts() bool {
	return c.TLS != nil && c.TLS.ClientAuth == tls.RequireAndVerifyClientCert
}

// authenticates reports whether clients of l prove who they are.
func (c *Config) authenticates(l Listener) bool {
	return l.sasl() || (l.tls() && c.clientCerts())
}

// authorize reports whether ACLs are enforced: with AuthorizerAuto, when
// some listener authenticates its clients.
func (c *Config) authorize() bool {
	switch c.Authorizer {
	case AuthorizerACL:
		return true
	case AuthorizerNone:
		return false
	}
	for _, l := range c.listeners() {
		if c.authenticates(l) {
			return true
		}
	}
	return false
}

// superUsers are the configured super users and the bootstrap user.
func (c *Config) superUsers() []string {
	out := slices.Clone(c.SuperUsers)
	if c.BootstrapUser != "" {
		out = append(out, "User:"+c.BootstrapUser)
	}
	return out
}

func (c *Config) validateAuthorizer() error {
	switch c.Authorizer {
	case AuthorizerAuto, AuthorizerACL, AuthorizerNone:
	default:
		return fmt.Errorf("%w: authorizer %q, want %s, %s or %s", ErrInvalidConfig, c.Authorizer, AuthorizerAuto, AuthorizerACL, AuthorizerNone)
	}
	for _, p := range c.SuperUsers {
		if kind, name, ok := strings.Cut(p, ":"); !ok || kind != "User" || name == "" {
			return fmt.Errorf("%w: super user %q, want User:NAME", ErrInvalidConfig, p)
		}
	}
	ib := c.interBroker()
	if !c.authorize() || ib.sasl() {
		return nil // brokers log in as the bootstrap user, a super user
	}
	// Brokers reach each other as their certificate's principal, which
	// only super users or a CLUSTER_ACTION ACL let replicate.
	if !c.authenticates(ib) {
		return fmt.Errorf("%w: with ACLs on, brokers must authenticate to each other: make the inter-broker listener SASL or mutual TLS", ErrInvalidConfig)
	}
	if len(c.SuperUsers) == 0 {
		return fmt.Errorf("%w: with mutual TLS and ACLs, name the brokers' certificate principal (User:CN=...) as a super user so they may replicate", ErrInvalidConfig)
	}
	return nil
}

// Network selects failure-detection and election timings.
type Network string

const (
	// NetworkLAN suits brokers on separate machines: Serf's LAN profile,
	// Raft's default timeouts.
	NetworkLAN Network = "lan"
	// NetworkLocal suits brokers on one host or a fast local network
	// (development clusters, tests): failures are seen and elections
	// finish in about a second.
	NetworkLocal Network = "local"
)

// ClusterConfig is how a broker takes part in its cluster: Serf for
// membership, Raft for metadata, pull replication between brokers.
type ClusterConfig struct {
	// SerfAddr is where Serf listens (--bind-addr); port 0 takes a free one.
	SerfAddr string
	// AdvertiseHost is the host other nodes and clients use for this node;
	// the listen hosts when empty.
	AdvertiseHost string
	// Peers are other nodes' Serf host:port, joined in the background.
	Peers []string
	// RaftAddr is where Raft listens (--raft-addr); port 0 takes a free one.
	RaftAddr string
	// Bootstrap makes this node start a new cluster when it has no state
	// and no peer already belongs to one.
	Bootstrap bool
	// Voters is how many nodes become Raft voters (--raft-voters).
	Voters int
	// LeaderImbalanceCheckInterval is how often the controller moves
	// leadership back to preferred replicas where a broker leads fewer
	// than 90% of its own (Kafka's leader.imbalance.check.interval.seconds,
	// with auto.leader.rebalance.enable, a dynamic broker config, on); 0
	// never does.
	LeaderImbalanceCheckInterval time.Duration
	// ReplicaLagMax drops a follower from the ISR when it has not caught up
	// for this long (replica.lag.time.max.ms).
	ReplicaLagMax time.Duration
	// ReplicaFetchBytes bounds one replica fetch.
	ReplicaFetchBytes int32
	// Rack is broker.rack: Metadata reports it, and a leader sends a
	// consumer that names the same rack (client.rack) to an in-sync
	// replica there (KIP-392 follower fetching).
	Rack string
	// Network selects timings: NetworkLAN (the default) or NetworkLocal.
	Network Network
}

// DefaultClusterConfig is a one-node cluster that bootstraps itself on the
// default ports.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		SerfAddr:                     "127.0.0.1:9092",
		RaftAddr:                     "127.0.0.1:9093",
		Bootstrap:                    true,
		Voters:                       cluster.DefaultVoters,
		ReplicaLagMax:                10 * time.Second,
		LeaderImbalanceCheckInterval: 5 * time.Minute,
		ReplicaFetchBytes:            8 << 20,
		Network:                      NetworkLAN,
	}
}

// Validate checks the cluster settings.
func (c *ClusterConfig) Validate() error {
	for _, a := range []struct{ name, addr string }{{"serf", c.SerfAddr}, {"raft", c.RaftAddr}} {
		if _, _, err := splitHostPort(a.addr); err != nil {
			return fmt.Errorf("%w: %s address %q: %w", ErrInvalidConfig, a.name, a.addr, err)
		}
	}
	for _, p := range c.Peers {
		if _, _, err := splitHostPort(p); err != nil {
			return fmt.Errorf("%w: peer %q: %w", ErrInvalidConfig, p, err)
		}
	}
	switch {
	case c.Voters < 1:
		return fmt.Errorf("%w: raft voters %d, want at least 1", ErrInvalidConfig, c.Voters)
	case c.ReplicaLagMax <= 0:
		return fmt.Errorf("%w: replica lag max %v", ErrInvalidConfig, c.ReplicaLagMax)
	case c.ReplicaFetchBytes < 1024:
		return fmt.Errorf("%w: replica fetch bytes %d, want at least 1024", ErrInvalidConfig, c.ReplicaFetchBytes)
	case c.Network != NetworkLAN && c.Network != NetworkLocal:
		return fmt.Errorf("%w: network %q, want %q or %q", ErrInvalidConfig, c.Network, NetworkLAN, NetworkLocal)
	}
	return nil
}

// Validate checks the settings and fills the logger.
func (c *Config) Validate() error {
	if c.NodeID == "" {
		return fmt.Errorf("%w: node id is empty", ErrInvalidConfig)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: data dir is empty", ErrInvalidConfig)
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	for _, m := range c.SASLMechanisms {
		if m != protocol.MechanismPlain && m != protocol.MechanismScramSHA256 && m != protocol.MechanismScramSHA512 {
			return fmt.Errorf("%w: SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", ErrInvalidConfig, m)
		}
	}
	if len(c.SASLMechanisms) > 0 && c.BootstrapUser == "" {
		return fmt.Errorf("%w: SASL needs a bootstrap user: the first way in, and how brokers log in to each other", ErrInvalidConfig)
	}
	if err := c.validateAuthorizer(); err != nil {
		return err
	}
	if c.HTTPTLS && (c.TLS == nil || c.HTTPAddr == "") {
		return fmt.Errorf("%w: HTTP over TLS needs the HTTP listener and a certificate (TLS)", ErrInvalidConfig)
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := splitHostPort(c.AdvertisedAddr); err != nil {
			return fmt.Errorf("%w: advertised address %q: %w", ErrInvalidConfig, c.AdvertisedAddr, err)
		}
	}
	if c.MaxPartitions < 1 {
		return fmt.Errorf("%w: max partitions %d", ErrInvalidConfig, c.MaxPartitions)
	}
	if c.OffsetsSegmentBytes < 1024 {
		return fmt.Errorf("%w: offsets segment bytes %d, want at least 1024", ErrInvalidConfig, c.OffsetsSegmentBytes)
	}
	if c.OffsetsPartitions < 1 {
		return fmt.Errorf("%w: offsets partitions %d", ErrInvalidConfig, c.OffsetsPartitions)
	}
	if c.TransactionStatePartitions < 1 || c.TransactionMaxTimeout <= 0 || c.TransactionAbortInterval <= 0 {
		return fmt.Errorf("%w: transaction state partitions %d, max timeout %v, abort interval %v", ErrInvalidConfig,
			c.TransactionStatePartitions, c.TransactionMaxTimeout, c.TransactionAbortInterval)
	}
	if c.OffsetsReplicationFactor < 0 {
		return fmt.Errorf("%w: offsets topic replication factor %d", ErrInvalidConfig, c.OffsetsReplicationFactor)
	}
	if c.DefaultPartitions < 1 || c.DefaultPartitions > c.MaxPartitions {
		return fmt.Errorf("%w: default partitions %d not in [1, %d]", ErrInvalidConfig, c.DefaultPartitions, c.MaxPartitions)
	}
	if c.MaxRequestBytes < 1024 {
		return fmt.Errorf("%w: max request bytes %d", ErrInvalidConfig, c.MaxRequestBytes)
	}
	if c.RetentionCheckInterval <= 0 {
		return fmt.Errorf("%w: retention check interval %v", ErrInvalidConfig, c.RetentionCheckInterval)
	}
	if c.ShutdownGrace < 0 {
		return fmt.Errorf("%w: shutdown grace %v", ErrInvalidConfig, c.ShutdownGrace)
	}
	if err := c.Cluster.Validate(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	lc := c.Log
	return lc.Validate()
}

func splitHostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", port, err)
	}
	return host, int32(p), nil
}

// KafkaNodeID maps a node name to the int32 broker id Kafka clients use: its
// trailing number ("node-3" is 3), or, for names without one, a stable hash.
func KafkaNodeID(name string) int32 {
	end := len(name)
	start := end
	for start > 0 && name[start-1] >= '0' && name[start-1] <= '9' {
		start--
	}
	if start < end && end-start <= 9 {
		n, _ := strconv.Atoi(name[start:end])
		return int32(n)
	}
	var h uint32 = 2166136261
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return int32(h&0x3fffffff) + 1000
}
