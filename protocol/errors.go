package protocol

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch"
)

// Errors the backend returns that map to Kafka codes.
var (
	ErrUnknownTopic        = errors.New("unknown topic")
	ErrUnknownPartition    = errors.New("unknown partition")
	ErrTopicExists         = errors.New("topic already exists")
	ErrInvalidTopic        = errors.New("invalid topic name")
	ErrInvalidPartitions   = errors.New("invalid number of partitions")
	ErrInvalidReplication  = errors.New("invalid replication factor")
	ErrInvalidConfig       = errors.New("invalid config")
	ErrNotController       = errors.New("not the controller")
	ErrUnsupportedFeature  = errors.New("not supported")
	ErrInvalidRequest      = errors.New("invalid request")
	ErrPolicyViolation     = errors.New("policy violation")
	ErrNotEnoughReplicas   = errors.New("not enough replicas")
	ErrNotLeader           = errors.New("not the leader")
	ErrBrokerNotAvailable  = errors.New("broker not available")
	ErrInvalidRequiredAcks = errors.New("invalid required acks")
	ErrStaleISRChange      = errors.New("stale ISR change")
	ErrLeaderNotAvailable  = errors.New("leader not available")
	ErrInvalidISR          = errors.New("invalid ISR")
	// ErrReplicaNotAuthorized means a request claimed a replica id it
	// cannot prove (CLUSTER_AUTHORIZATION_FAILED).
	ErrReplicaNotAuthorized = errors.New("replica not authorized")
	// ErrClusterAuthorization means the principal may not do this to the
	// cluster (CLUSTER_AUTHORIZATION_FAILED).
	ErrClusterAuthorization = errors.New("cluster authorization failed")
	// ErrTopicAuthorization means the principal may not do this to the
	// topic (TOPIC_AUTHORIZATION_FAILED).
	ErrTopicAuthorization = errors.New("topic authorization failed")
	// ErrGroupAuthorization means the principal may not do this to the
	// group (GROUP_AUTHORIZATION_FAILED).
	ErrGroupAuthorization = errors.New("group authorization failed")
	// ErrCoordinatorNotAvailable means the group coordinator cannot serve
	// yet (the offsets topic is not created or has no leader).
	ErrCoordinatorNotAvailable = errors.New("coordinator not available")
)

// codes is the one table where mlog's errors meet Kafka's error codes,
// read both ways: a handler's error becomes a code (errorCode), and a code
// in a response from another broker becomes the error (ErrorForCode).
// Order matters only where one error wraps another; the first sentinel
// listed for a code is what ErrorForCode returns.
var codes = []struct {
	err  error
	code *kerr.Error
}{
	{batch.ErrCorrupt, kerr.CorruptMessage},
	{batch.ErrTruncated, kerr.CorruptMessage},
	{batch.ErrUnsupportedMagic, kerr.UnsupportedForMessageFormat},
	{batch.ErrInvalidRecordCount, kerr.InvalidRecord},
	{batch.ErrControlBatch, kerr.InvalidRecord},
	{batch.ErrInvalidSequence, kerr.InvalidRecord},
	{storage.ErrBatchTooLarge, kerr.MessageTooLarge},
	{storage.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{partition.ErrDeleteBeyondHighWatermark, kerr.OffsetOutOfRange},
	{storage.ErrNotDurable, kerr.KafkaStorageError},
	{storage.ErrLogFailed, kerr.KafkaStorageError},
	{storage.ErrCorruptSegment, kerr.KafkaStorageError},
	{ErrNotLeader, kerr.NotLeaderForPartition},
	{storage.ErrClosed, kerr.NotLeaderForPartition},
	{partition.ErrNotLeader, kerr.NotLeaderForPartition},
	{partition.ErrTruncatedBeforeCommit, kerr.NotLeaderForPartition},
	{partition.ErrFencedEpoch, kerr.FencedLeaderEpoch},
	{partition.ErrUnknownEpoch, kerr.UnknownLeaderEpoch},
	{ErrNotEnoughReplicas, kerr.NotEnoughReplicas},
	{partition.ErrNotEnoughReplicas, kerr.NotEnoughReplicas},
	{partition.ErrNotEnoughReplicasAfterAppend, kerr.NotEnoughReplicasAfterAppend},
	{partition.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{partition.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{partition.ErrCoordinatorFenced, kerr.TransactionCoordinatorFenced},
	{ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{ErrUnknownPartition, kerr.UnknownTopicOrPartition},
	{cluster.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{cluster.ErrUnknownPartition, kerr.UnknownTopicOrPartition},
	{ErrTopicExists, kerr.TopicAlreadyExists},
	{cluster.ErrTopicExists, kerr.TopicAlreadyExists},
	{ErrInvalidTopic, kerr.InvalidTopicException},
	{ErrInvalidPartitions, kerr.InvalidPartitions},
	{cluster.ErrInvalidPartitionCount, kerr.InvalidPartitions},
	{ErrInvalidReplication, kerr.InvalidReplicationFactor},
	{cluster.ErrNotEnoughBrokers, kerr.InvalidReplicationFactor},
	{ErrInvalidConfig, kerr.InvalidConfig},
	{cluster.ErrInvalidReplicaAssignment, kerr.InvalidReplicaAssignment},
	{cluster.ErrBrokerNotRegistered, kerr.BrokerIDNotRegistered},
	{cluster.ErrNoReassignmentInProgress, kerr.NoReassignmentInProgress},
	{cluster.ErrElectionNotNeeded, kerr.ElectionNotNeeded},
	{cluster.ErrPreferredLeaderUnavailable, kerr.PreferredLeaderNotAvailable},
	{cluster.ErrEligibleLeadersUnavailable, kerr.EligibleLeadersNotAvailable},
	{ErrNotController, kerr.NotController},
	{cluster.ErrNotLeader, kerr.NotController},
	{ErrInvalidRequest, kerr.InvalidRequest},
	{ErrInvalidISR, kerr.InvalidRequest},
	{cluster.ErrInvalidISR, kerr.InvalidRequest},
	{cluster.ErrBrokerHasReplicas, kerr.InvalidRequest},
	{ErrPolicyViolation, kerr.PolicyViolation},
	{ErrBrokerNotAvailable, kerr.BrokerNotAvailable},
	{ErrInvalidRequiredAcks, kerr.InvalidRequiredAcks},
	{ErrLeaderNotAvailable, kerr.LeaderNotAvailable},
	{ErrStaleISRChange, kerr.FencedLeaderEpoch},
	{cluster.ErrStaleEpoch, kerr.FencedLeaderEpoch},
	{ErrReplicaNotAuthorized, kerr.ClusterAuthorizationFailed},
	{ErrClusterAuthorization, kerr.ClusterAuthorizationFailed},
	{ErrTopicAuthorization, kerr.TopicAuthorizationFailed},
	{ErrGroupAuthorization, kerr.GroupAuthorizationFailed},
	{acl.ErrInvalidBinding, kerr.InvalidRequest},
	{ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
	{ErrUnsupportedFeature, kerr.UnsupportedVersion},
	{context.DeadlineExceeded, kerr.RequestTimedOut},
	{context.Canceled, kerr.NotLeaderForPartition}, // shutting down: clients retry elsewhere
}

// errorCode maps an error to its Kafka error code.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}

// ErrorForCode is the error a Kafka error code in a response stands for:
// mlog's own sentinel where the table has one (so callers check one kind
// of error, whether it happened here or on another broker), wrapping
// kerr's error for the code; nil for 0.
func ErrorForCode(code int16) error {
	ke := kerr.ErrorForCode(code)
	if ke == nil {
		return nil
	}
	if own := sentinelFor(code); own != nil {
		return fmt.Errorf("%w: %w", own, ke)
	}
	return ke
}

// Sentinel returns err wrapped in the protocol's sentinel for its Kafka
// code (cluster.ErrTopicExists becomes also ErrTopicExists), so errors
// from the controller are checked the same way whether it ran here or was
// asked over the network.
func Sentinel(err error) error {
	if err == nil {
		return nil
	}
	own := sentinelFor(errorCode(err))
	if own == nil || errors.Is(err, own) {
		return err
	}
	return fmt.Errorf("%w: %w", own, err)
}

// sentinelFor is the first of the protocol's own errors the table maps
// to code, or nil.
func sentinelFor(code int16) error {
	for _, c := range codes {
		if c.code.Code == code && slices.Contains(ownErrors, c.err) {
			return c.err
		}
	}
	return nil
}

var ownErrors = []error{ErrUnknownTopic, ErrUnknownPartition, ErrTopicExists, ErrInvalidTopic, ErrInvalidPartitions,
	ErrInvalidReplication, ErrInvalidConfig, ErrNotController, ErrUnsupportedFeature, ErrInvalidRequest, ErrPolicyViolation,
	ErrNotEnoughReplicas, ErrNotLeader, ErrBrokerNotAvailable, ErrInvalidRequiredAcks, ErrStaleISRChange,
	ErrLeaderNotAvailable, ErrInvalidISR, ErrReplicaNotAuthorized, ErrClusterAuthorization, ErrTopicAuthorization, ErrGroupAuthorization,
	ErrCoordinatorNotAvailable}

// errorMessage is the text for responses that carry one.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
