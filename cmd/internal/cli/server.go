package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mlog/mlog/broker"
)

type serverFlags struct {
	rpcPort          int
	dataDir          string
	nodeID           string
	bindAddr         string
	raftAddr         string
	advertiseAddr    string
	bootstrap        bool
	peers            []string
	replBatchSize    int
	autoCreateTopics bool
	numPartitions    int32
	fsync            string
	maxRequestBytes  int32
	logLevel         string
	logFormat        string
}

const notYet = " (accepted; not used until the cluster release: today the node runs as a single-node cluster)"

// ServerCmd is `mlog server` (and the `server` binary).
func ServerCmd() *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an mlog broker",
		Long: `Run an mlog broker. With no flags it is a working single-node broker:
data in /tmp/mlog, Kafka protocol on 127.0.0.1:9094. Try it with
  kcat -b 127.0.0.1:9094 -L

The Kafka listener binds the host of --bind-addr on --rpc-port and tells
clients to connect to --advertise-addr (or that host) on --rpc-port.
SIGINT or SIGTERM shuts down cleanly: the listener closes, requests in flight
are answered, logs are flushed and marked cleanly shut down.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServer(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.rpcPort, "rpc-port", 9094, "Kafka protocol (client and replication) port")
	fl.StringVar(&f.dataDir, "data-dir", "/tmp/mlog", "where to store log data")
	fl.StringVar(&f.nodeID, "node-id", "node-1", "unique node identifier; its trailing number is the Kafka broker id")
	fl.StringVar(&f.bindAddr, "bind-addr", "127.0.0.1:9092", "Serf gossip listen address; its host is also where the Kafka listener binds"+notYet)
	fl.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:9093", "Raft transport address"+notYet)
	fl.StringVar(&f.advertiseAddr, "advertise-addr", "", "host (or host:port) other nodes and clients use to reach this node (e.g. node1 in Docker)")
	fl.BoolVar(&f.bootstrap, "bootstrap", false, "bootstrap a new Raft cluster, on ONE node only; `--bootstrap true` also works"+notYet)
	fl.StringArrayVar(&f.peers, "peer", nil, "peer for Serf join, repeatable: --peer node-2=host:port"+notYet)
	fl.IntVar(&f.replBatchSize, "replication-batch-size", 5000, "max records per replication fetch"+notYet)
	fl.BoolVar(&f.autoCreateTopics, "auto-create-topics", true, "create a topic on its first produce or metadata request")
	fl.Int32Var(&f.numPartitions, "num-partitions", 1, "partitions of auto-created topics")
	fl.StringVar(&f.fsync, "fsync", "always", "always: acks=1/all are answered after fsync (group commit); never: after the write, trusting the page cache as Kafka does")
	fl.Int32Var(&f.maxRequestBytes, "max-request-bytes", 100<<20, "close connections that send bigger requests")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return withEnv(cmd)
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
	cfg.AutoCreateTopics, cfg.DefaultPartitions = f.autoCreateTopics, f.numPartitions
	cfg.MaxRequestBytes = f.maxRequestBytes
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
	if f.bootstrap || len(f.peers) > 0 {
		logger.Warn("cluster flags accepted but not used yet: this node runs as a single-node cluster",
			"bootstrap", f.bootstrap, "peers", f.peers)
	}
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
