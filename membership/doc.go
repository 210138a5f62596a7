// Package membership owns cluster membership: which mlog brokers exist,
// where they can be reached and whether they are alive. It runs
// hashicorp/serf (gossip over hashicorp/memberlist); every broker gossips
// its identity and addresses as serf tags, and joins, graceful leaves,
// failures, tag updates and reaps of long-gone members become Events for
// the cluster controller.
//
// A broker may start before any of its peers: the configured Peers are
// joined in the background, retried every RejoinInterval until one of them
// answers; after that serf's own gossip and reconnect logic keep the
// cluster together.
//
// The package must never know about Raft, Kafka requests or files: it
// reports who is there and leaves every decision about what that means to
// its caller. It keeps no snapshot on disk, so a restarted broker rejoins
// through its Peers like a new one (with the same name: serf is configured
// to allow rejoining after a leave).
//
// Serf's event loop must never wait on a slow consumer: events are copied
// into an unbounded in-memory queue that feeds Events().
package membership
