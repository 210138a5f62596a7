package protocol

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/partition"
)

// Backend is what the handlers need from the broker. The broker implements
// it; the protocol package defines it (the user of an interface owns it).
type Backend interface {
	// Cluster describes the brokers, with their addresses on the listener
	// named listener ("": the first), and who is controller.
	Cluster(listener string) ClusterInfo
	// Topics lists topics by name.
	Topics() []TopicInfo
	// Topic describes one topic; ErrUnknownTopic when there is none.
	Topic(name string) (TopicInfo, error)
	// AutoCreate creates a topic with default settings on first use, when
	// the broker allows it; it returns ErrUnknownTopic otherwise.
	AutoCreate(ctx context.Context, name string) (TopicInfo, error)
	CreateTopic(ctx context.Context, spec TopicSpec, validateOnly bool) (TopicInfo, error)
	DeleteTopic(ctx context.Context, name string) error
	CreatePartitions(ctx context.Context, name string, count int32, validateOnly bool) error
	// ScramCredential returns a user's stored credential for a SCRAM
	// mechanism (cluster.ScramSHA256 or cluster.ScramSHA512).
	ScramCredential(user string, mech int8) (cluster.ScramCredential, bool)
	// ScramUsers returns every user with SCRAM credentials: mechanism
	// (Kafka's numbers) to iteration count.
	ScramUsers() map[string]map[int8]int32
	// AlterScram applies AlterUserScramCredentials on the controller and
	// returns its per-user results.
	AlterScram(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest) (*kmsg.AlterUserSCRAMCredentialsResponse, error)
	// ACLs is the current access control bindings, indexed for
	// authorization; ACLBindings lists them (DescribeAcls).
	ACLs() *acl.Set
	ACLBindings() []acl.Binding
	// CreateACLs and DeleteACLs apply the requests on the controller
	// (ApplyCreateACLs, ApplyDeleteACLs), forwarded there from any other
	// broker.
	CreateACLs(ctx context.Context, req *kmsg.CreateACLsRequest) (*kmsg.CreateACLsResponse, error)
	DeleteACLs(ctx context.Context, req *kmsg.DeleteACLsRequest) (*kmsg.DeleteACLsResponse, error)
	// Partition returns this broker's replica of a partition, or
	// ErrUnknownTopic / ErrUnknownPartition.
	Partition(topic string, id int32) (*partition.Partition, error)
	// TopicConfigs and BrokerConfigs answer DescribeConfigs; BrokerConfigs
	// describes broker name (its id, or "" for the cluster-wide dynamic
	// defaults).
	TopicConfigs(name string) ([]ConfigEntry, error)
	BrokerConfigs(name string) ([]ConfigEntry, error)
	// AlterConfigs changes a topic's or dynamic broker configs, applied
	// without a restart (IncrementalAlterConfigs, AlterConfigs).
	AlterConfigs(ctx context.Context, a ConfigAlteration) error
	// Reassign starts, replaces or cancels partition reassignments
	// (AlterPartitionReassignments), one error per change;
	// Reassignments lists those in progress (parts nil: all).
	Reassign(ctx context.Context, changes []Reassignment) ([]error, error)
	Reassignments(parts map[string][]int32) []Reassignment
	// ElectLeaders elects preferred or unclean leaders (parts nil: every
	// partition), one result per partition.
	ElectLeaders(ctx context.Context, typ int8, parts map[string][]int32) ([]Election, error)
	// UnregisterBroker decommissions a broker that holds no replica.
	UnregisterBroker(ctx context.Context, id int32) error
	// NewProducerID allocates an idempotent producer id.
	NewProducerID(ctx context.Context) (id int64, epoch int16, err error)
	// LogDir describes the data directory and the replicas in it
	// (DescribeLogDirs).
	LogDir() LogDirInfo
	// Changed returns a channel closed when any partition's high watermark
	// or log end may have moved: long-polling fetches wait on it.
	Changed() <-chan struct{}

	// PreferredReadReplica names the replica a consumer in clientRack
	// should fetch from instead of this leader (KIP-392), or -1.
	PreferredReadReplica(topic string, id int32, clientRack string) int32
	// AuthorizeReplica checks that a request claiming to come from broker
	// replica (a follower's Fetch or OffsetForLeaderEpoch) does: the client
	// id must carry that broker's current incarnation, which only cluster
	// members know. ErrReplicaNotAuthorized otherwise.
	AuthorizeReplica(replica int32, clientID string) error
	// ReplicaFetched records that follower replica fetched a partition this
	// broker leads at fetchOffset (its log end).
	ReplicaFetched(topic string, id int32, replica int32, fetchOffset int64)
	// AlterISR applies a partition leader's ISR change on the controller
	// and returns the new partition epoch; ErrNotController elsewhere.
	AlterISR(ctx context.Context, req ISRChange) (int32, error)
	// AllocateProducerIDs reserves a block of producer ids on the
	// controller for broker id.
	AllocateProducerIDs(ctx context.Context, brokerID int32) (first int64, count int32, err error)
	// ControlledShutdown moves leadership away from a broker about to stop.
	ControlledShutdown(ctx context.Context, brokerID int32) error

	// FindCoordinator returns the broker coordinating a consumer group
	// (key type 0) or a transactional id (1), creating the internal topic
	// on first need, with its address on listener.
	FindCoordinator(ctx context.Context, keyType int8, key, listener string) (BrokerInfo, error)
	// TxnMarkerWritten says a transaction marker is written and
	// replicated in a partition this broker leads (WriteTxnMarkers).
	TxnMarkerWritten(topic string, partition int32, producerID int64, commit bool)
	// DescribeTransactions and ListTransactions answer for the
	// transactional ids this broker coordinates.
	DescribeTransactions(ids []string) []kmsg.DescribeTransactionsResponseTransactionState
	ListTransactions(states []string, producerIDs []int64, minDuration time.Duration) ([]kmsg.ListTransactionsResponseTransactionState, []string)
	// Transaction answers a transactional request (InitProducerID with a
	// transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn).
	Transaction(ctx context.Context, req kmsg.Request) kmsg.Response
	// Group answers a consumer-group request (JoinGroup, SyncGroup,
	// Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups,
	// ListGroups, DeleteGroups, OffsetDelete).
	Group(ctx context.Context, clientID, clientHost string, req kmsg.Request) kmsg.Response
}

// LogDirInfo is the broker's log directory: its volume and the size of
// each partition replica in it.
type LogDirInfo struct {
	Dir                     string
	TotalBytes, UsableBytes int64 // of the volume; -1 when unknown
	Partitions              []PartitionSize
}

// PartitionSize is one replica's size on disk, and how far its log end is
// behind the high watermark it knows (Kafka's OffsetLag).
type PartitionSize struct {
	Topic     string
	Partition int32
	Size      int64
	OffsetLag int64
}

// ISRChange is a partition leader's proposed ISR.
type ISRChange struct {
	Topic          string
	Partition      int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
}

// ClusterInfo is the cluster as Metadata shows it.
type ClusterInfo struct {
	ClusterID    string
	ControllerID int32
	Brokers      []BrokerInfo
	// NoListener are live brokers left out of Brokers because they have
	// no listener of the name asked for.
	NoListener map[int32]bool
}

// BrokerInfo is one broker's advertised address.
type BrokerInfo struct {
	NodeID int32
	Host   string
	Port   int32
	Rack   *string
}

// TopicInfo describes a topic and its partitions.
type TopicInfo struct {
	Name       string
	ID         [16]byte
	Internal   bool
	Partitions []PartitionInfo
}

// PartitionInfo is one partition's leadership.
type PartitionInfo struct {
	ID          int32
	Leader      int32
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
}

// TopicSpec is a CreateTopics request for one topic. Partitions or
// ReplicationFactor of -1 take the broker's defaults.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// ConfigEntry is one config value for DescribeConfigs.
type ConfigEntry struct {
	Name      string
	Value     *string
	ReadOnly  bool
	Default   bool
	Sensitive bool
	// Source, when not 0, is the value's kmsg.ConfigSource; else it is
	// derived (a default, a topic's own, or the broker's static config).
	Source kmsg.ConfigSource
}

// ConfigAlteration is one resource of an IncrementalAlterConfigs or
// AlterConfigs request. Incremental applies Ops to the current configs
// (kmsg.IncrementalAlterConfigOp: set, delete, append to or subtract from a
// list); otherwise the Ops' values replace the whole set.
type ConfigAlteration struct {
	Type         kmsg.ConfigResourceType
	Name         string
	Ops          []ConfigOp
	Incremental  bool
	ValidateOnly bool
}

// Reassignment is a partition's target replicas (nil: cancel) in a
// request, or its replicas, adding and removing ones in a listing.
type Reassignment struct {
	Topic                 string
	Partition             int32
	Replicas              []int32
	Adding, Removing      []int32
	KeepReplicationFactor bool // AlterPartitionReassignments v1 without allow_replication_factor_change
}

// Election is one partition's ElectLeaders outcome.
type Election struct {
	Topic     string
	Partition int32
	Err       error
}

// ConfigOp is one config change.
type ConfigOp struct {
	Name  string
	Op    kmsg.IncrementalAlterConfigOp
	Value *string
}
