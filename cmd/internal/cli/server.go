package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/internal/tlsfiles"
)

type serverFlags struct {
	rpcPort          int
	dataDir          string
	nodeID           string
	bindAddr         string
	raftAddr         string
	advertiseAddr    string
	httpAddr         string
	bootstrap        bool
	bootstrapNode    string
	peers            []string
	replBatchSize    int
	raftVoters       int
	rack             string
	replicaLagMax    time.Duration
	autoCreateTopics bool
	offsetsRF        int16
	numPartitions    int32
	fsync            string
	maxRequestBytes  int32
	logLevel         string
	logFormat        string
	tlsCertFile      string
	tlsKeyFile       string
	tlsClientCAFile  string
	tlsCAFile        string
	httpTLS          bool
	saslMechanisms   []string
	bootstrapUser    string
	superUsers       []string
	authorizer       string
	listeners        listenerFlags
}

const (
	// httpAddrAuto is --http-addr's default: a port derived from the
	// Kafka port.
	httpAddrAuto = "auto"
	// httpPortOffset puts the HTTP listener 550 above the Kafka port:
	// 9644 for 9094, as Redpanda's admin port.
	httpPortOffset = 550
)

// ServerCmd is `mlog server` (and the `server` binary).
func ServerCmd() *cobra.Command {
	cmd, _ := newServerCmd()
	return cmd
}

// newServerCmd is `mlog server` and the flags it fills.
func newServerCmd() (*cobra.Command, *serverFlags) {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an mlog broker",
		Long: `Run an mlog broker. With no flags it is a working single-node cluster that
bootstraps itself: data in /tmp/mlog, Kafka protocol on 127.0.0.1:9094, Serf
on 127.0.0.1:9092, Raft on 127.0.0.1:9093. Try it with
  kcat -b 127.0.0.1:9094 -L

A cluster: start one node with --bootstrap and every node with --peer
entries naming the others' Serf addresses; nodes may start in any order.
The Kafka listener binds the host of --bind-addr on --rpc-port and tells
clients to connect to --advertise-addr (or that host) on --rpc-port.
--listeners replaces it with listeners of their own, as Kafka's:
  --listeners PLAINTEXT://127.0.0.1:9094,SASL_SSL://0.0.0.0:9194
  --advertised-listeners SASL_SSL://mlog.example.com:9194

SIGINT or SIGTERM shuts down cleanly: leaderships are handed to other
in-sync replicas first, the listener closes, requests in flight are
answered, logs are flushed and marked cleanly shut down.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServer(cmd.Context(), f) },
	}
	def := broker.DefaultConfig()
	fl := cmd.Flags()
	fl.IntVar(&f.rpcPort, "rpc-port", 9094, "Kafka protocol (client and replication) port")
	fl.StringVar(&f.httpAddr, "http-addr", httpAddrAuto, "HTTP listener for /metrics (Prometheus), /healthz and /readyz; auto: the --bind-addr host on port --rpc-port+550 (127.0.0.1:9644 with the default ports), skipped with a warning if that port is taken; empty for none")
	fl.StringVar(&f.dataDir, "data-dir", def.DataDir, "where to store log data")
	fl.StringVar(&f.nodeID, "node-id", def.NodeID, "unique node identifier; its trailing number is the Kafka broker id")
	fl.StringVar(&f.bindAddr, "bind-addr", def.Cluster.SerfAddr, "Serf gossip listen address; its host is also where the Kafka listener binds")
	fl.StringVar(&f.raftAddr, "raft-addr", def.Cluster.RaftAddr, "Raft transport address")
	fl.StringVar(&f.advertiseAddr, "advertise-addr", "", "host other nodes and clients use to reach this node (e.g. node1 in Docker)")
	fl.BoolVar(&f.bootstrap, "bootstrap", false, "bootstrap a new Raft cluster, on ONE node only (`--bootstrap true` also works); a node with no --peer bootstraps itself")
	fl.StringVar(&f.bootstrapNode, "bootstrap-node", "", "bootstrap when --node-id is this name: the same flags for every node (a Kubernetes StatefulSet passes --bootstrap-node mlog-0)")
	fl.StringArrayVar(&f.peers, "peer", nil, "another node's Serf address to join, repeatable: --peer node-2=host:port (or host:port)")
	fl.IntVar(&f.replBatchSize, "replication-batch-size", 5000, "max records per replication fetch (taken as records of ~1 KiB: it bounds a fetch's bytes)")
	fl.IntVar(&f.raftVoters, "raft-voters", def.Cluster.Voters, "how many nodes become Raft voters; later ones join as non-voters")
	fl.StringVar(&f.rack, "rack", "", "this broker's rack (broker.rack): consumers naming the same client.rack read from replicas here (KIP-392)")
	fl.DurationVar(&f.replicaLagMax, "replica-lag-max", def.Cluster.ReplicaLagMax, "a follower not caught up for this long leaves the ISR (replica.lag.time.max.ms)")
	fl.BoolVar(&f.autoCreateTopics, "auto-create-topics", def.AutoCreateTopics, "create a topic on its first produce or metadata request")
	fl.Int32Var(&f.numPartitions, "num-partitions", def.DefaultPartitions, "partitions of auto-created topics")
	fl.Int16Var(&f.offsetsRF, "offsets-replication-factor", 0, "replicas of __consumer_offsets, created once this many brokers are alive; 0 for min(3, this node and its peers)")
	fl.StringVar(&f.fsync, "fsync", "always", "always: acks=1/all are answered after fsync (group commit); never: after the write, trusting the page cache as Kafka does")
	fl.Int32Var(&f.maxRequestBytes, "max-request-bytes", def.MaxRequestBytes, "close connections that send bigger requests")
	fl.StringVar(&f.tlsCertFile, "tls-cert-file", "", "PEM certificate (chain) of the Kafka listener: with --tls-key-file it speaks TLS 1.2+, and this broker presents it to the others")
	fl.StringVar(&f.tlsKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fl.StringVar(&f.tlsClientCAFile, "tls-client-ca-file", "", "PEM CA certificates: clients (other brokers too) must present a certificate one of them signed (mutual TLS)")
	fl.StringVar(&f.tlsCAFile, "tls-ca-file", "", "PEM CA certificates this broker trusts when it connects to the other brokers' TLS listeners; default: --tls-client-ca-file, else the system's")
	fl.BoolVar(&f.httpTLS, "http-tls", false, "serve the HTTP listener (REST API, console, /metrics) over TLS with --tls-cert-file; with --tls-client-ca-file a client certificate names the REST request's principal")
	fl.StringSliceVar(&f.saslMechanisms, "sasl-mechanisms", nil, "require SASL authentication with these mechanisms: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN (comma-separated; empty: no SASL)")
	fl.StringVar(&f.bootstrapUser, "bootstrap-user", "", "NAME:PASSWORD: on a cluster with no users yet, this user gets SCRAM credentials; brokers log in to each other as it under SASL (give every broker the same)")
	fl.StringSliceVar(&f.superUsers, "super-users", nil, "principals that may do anything, as Kafka's super.users: User:alice,User:CN=broker-1 (the bootstrap user always is one)")
	fl.StringVar(&f.authorizer, "authorizer", def.Authorizer, "auto: enforce ACLs when clients authenticate (SASL or client certificates); acl: always; none: never. No ACL means deny")
	fl.StringSliceVar(&f.listeners.listeners, "listeners", nil, "Kafka listeners NAME://host:port, comma-separated, replacing --rpc-port: PLAINTEXT://127.0.0.1:9094,SASL_SSL://0.0.0.0:9194")
	fl.StringSliceVar(&f.listeners.advertised, "advertised-listeners", nil, "NAME://host:port clients of each listener are told to connect to (default: where it listens; a listener on 0.0.0.0 is advertised under --advertise-addr or the host name)")
	fl.StringSliceVar(&f.listeners.protocolMap, "listener-security-protocol-map", nil, "NAME:PROTOCOL for listeners not named after their protocol: INTERNAL:SASL_SSL,EXTERNAL:SASL_PLAINTEXT")
	fl.StringVar(&f.listeners.interBroker, "inter-broker-listener-name", "", "the listener brokers replicate and forward over (default: the first of --listeners)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return withEnv(cmd), f
}

func (f *serverFlags) brokerConfig() (broker.Config, error) {
	cfg := broker.DefaultConfig()
	if f.rpcPort < 1 || f.rpcPort > 65535 {
		return cfg, fmt.Errorf("--rpc-port %d: want 1-65535", f.rpcPort)
	}
	host, _, err := net.SplitHostPort(f.bindAddr)
	if err != nil {
		return cfg, fmt.Errorf("--bind-addr %q: want host:port: %w", f.bindAddr, err)
	}
	if _, _, err := net.SplitHostPort(f.raftAddr); err != nil {
		return cfg, fmt.Errorf("--raft-addr %q: want host:port: %w", f.raftAddr, err)
	}
	port := strconv.Itoa(f.rpcPort)
	cfg.ListenAddr = net.JoinHostPort(host, port)
	if f.httpAddr != "" && f.httpAddr != httpAddrAuto {
		if _, _, err := net.SplitHostPort(f.httpAddr); err != nil {
			return cfg, fmt.Errorf("--http-addr %q: want host:port: %w", f.httpAddr, err)
		}
	}
	cfg.HTTPAddr = f.httpAddr
	if f.httpAddr == httpAddrAuto {
		// Derived from the Kafka port, so nodes sharing a host with their
		// own --rpc-port get their own; optional, so a port someone else
		// holds never stops a broker that was not told to use it.
		cfg.HTTPAddr = net.JoinHostPort(host, strconv.Itoa(f.rpcPort+httpPortOffset))
		cfg.HTTPAddrOptional = true
	}
	switch adv := f.advertiseAddr; {
	case adv != "":
		if _, _, err := net.SplitHostPort(adv); err == nil {
			cfg.AdvertisedAddr = adv
		} else {
			cfg.AdvertisedAddr = net.JoinHostPort(adv, port)
		}
	case host == "" || host == "0.0.0.0" || host == "::":
		// Clients cannot connect to "any address": tell them our name.
		name, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("--bind-addr %q listens everywhere and the host name is unknown: set --advertise-addr", f.bindAddr)
		}
		cfg.AdvertisedAddr = net.JoinHostPort(name, port)
	}
	cfg.NodeID, cfg.DataDir = f.nodeID, f.dataDir
	var peers []string
	for _, p := range f.peers {
		if _, addr, ok := strings.Cut(p, "="); ok {
			p = addr // the name=host:port form
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return cfg, fmt.Errorf("--peer %q: want name=host:port or host:port", p)
		}
		peers = append(peers, p)
	}
	if f.replBatchSize < 1 {
		return cfg, fmt.Errorf("--replication-batch-size %d: want a positive number", f.replBatchSize)
	}
	advHost := ""
	if f.advertiseAddr != "" {
		advHost = f.advertiseAddr
		if h, _, err := net.SplitHostPort(f.advertiseAddr); err == nil {
			advHost = h
		}
	}
	cc := &cfg.Cluster
	cc.SerfAddr, cc.AdvertiseHost, cc.Peers, cc.RaftAddr = f.bindAddr, advHost, peers, f.raftAddr
	cc.Bootstrap, cc.Voters, cc.Rack, cc.ReplicaLagMax = f.bootstrap || len(peers) == 0 || (f.bootstrapNode != "" && f.bootstrapNode == f.nodeID), f.raftVoters, f.rack, f.replicaLagMax
	cc.ReplicaFetchBytes = int32(min(f.replBatchSize, 1<<20) * 1024)
	cfg.AutoCreateTopics, cfg.DefaultPartitions = f.autoCreateTopics, f.numPartitions
	cfg.OffsetsReplicationFactor = f.offsetsRF
	cfg.MaxRequestBytes = f.maxRequestBytes
	if err := f.tlsConfig(&cfg); err != nil {
		return cfg, err
	}
	if f.httpTLS && cfg.TLS == nil {
		return cfg, fmt.Errorf("--http-tls needs --tls-cert-file and --tls-key-file")
	}
	cfg.HTTPTLS = f.httpTLS
	cfg.SASLMechanisms = f.saslMechanisms
	if f.bootstrapUser != "" {
		name, password, ok := strings.Cut(f.bootstrapUser, ":")
		if !ok || name == "" || password == "" {
			return cfg, fmt.Errorf("--bootstrap-user: want NAME:PASSWORD")
		}
		cfg.BootstrapUser, cfg.BootstrapPassword = name, password
	}
	if len(cfg.SASLMechanisms) > 0 && cfg.BootstrapUser == "" {
		return cfg, fmt.Errorf("--sasl-mechanisms needs --bootstrap-user NAME:PASSWORD: the first way in, and how brokers log in to each other")
	}
	cfg.SuperUsers, cfg.Authorizer = f.superUsers, f.authorizer
	if cfg.Listeners, err = f.listeners.brokerListeners(advHost); err != nil {
		return cfg, err
	}
	cfg.InterBrokerListener = strings.ToUpper(f.listeners.interBroker)
	if len(cfg.Listeners) > 0 && f.httpAddr == httpAddrAuto {
		h, _, _ := net.SplitHostPort(cfg.Listeners[0].Addr)
		cfg.HTTPAddr = net.JoinHostPort(h, strconv.Itoa(firstPort(cfg.Listeners)+httpPortOffset))
	}
	switch f.fsync {
	case "always":
		cfg.SyncAcks = true
	case "never":
		cfg.SyncAcks = false
	default:
		return cfg, fmt.Errorf("--fsync %q: want always or never", f.fsync)
	}
	return cfg, nil
}

// tlsConfig sets the listener's TLS and the TLS this broker uses to reach
// the others from the --tls-* flags.
func (f *serverFlags) tlsConfig(cfg *broker.Config) error {
	if f.tlsCertFile == "" && f.tlsKeyFile == "" {
		if f.tlsClientCAFile != "" || f.tlsCAFile != "" {
			return fmt.Errorf("--tls-client-ca-file and --tls-ca-file need --tls-cert-file and --tls-key-file")
		}
		return nil
	}
	var err error
	if cfg.TLS, err = tlsfiles.Server(f.tlsCertFile, f.tlsKeyFile, f.tlsClientCAFile); err != nil {
		return fmt.Errorf("--tls-cert-file, --tls-key-file, --tls-client-ca-file: %w", err)
	}
	trust := f.tlsCAFile
	if trust == "" {
		trust = f.tlsClientCAFile
	}
	if cfg.PeerTLS, err = tlsfiles.Client(trust, f.tlsCertFile, f.tlsKeyFile); err != nil {
		return fmt.Errorf("--tls-ca-file: %w", err)
	}
	return nil
}

func runServer(ctx context.Context, f *serverFlags) error {
	logger, err := newLogger(os.Stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	cfg, err := f.brokerConfig()
	if err != nil {
		return err
	}
	cfg.Logger = logger
	raiseOpenFileLimit(logger)
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		_ = b.Close()
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	<-ctx.Done()
	stop() // a second signal now kills the process, as users expect
	logger.Info("shutting down; a second signal stops at once")
	return b.Close()
}
