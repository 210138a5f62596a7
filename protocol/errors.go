package protocol

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

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
)

// errorCode maps a domain error to its Kafka error code: the one place where
// mlog's errors meet Kafka's.
func errorCode(err error) int16 {
	var code *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return code.Code
	case errors.Is(err, batch.ErrCorrupt), errors.Is(err, batch.ErrTruncated):
		return kerr.CorruptMessage.Code
	case errors.Is(err, batch.ErrUnsupportedMagic):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, batch.ErrInvalidRecordCount), errors.Is(err, batch.ErrControlBatch),
		errors.Is(err, batch.ErrInvalidSequence):
		return kerr.InvalidRecord.Code
	case errors.Is(err, storage.ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrNotDurable), errors.Is(err, storage.ErrLogFailed),
		errors.Is(err, storage.ErrCorruptSegment):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, storage.ErrClosed), errors.Is(err, ErrNotLeader):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, partition.ErrNotLeader), errors.Is(err, partition.ErrTruncatedBeforeCommit):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, partition.ErrFencedEpoch):
		return kerr.FencedLeaderEpoch.Code
	case errors.Is(err, partition.ErrUnknownEpoch):
		return kerr.UnknownLeaderEpoch.Code
	case errors.Is(err, partition.ErrNotEnoughReplicas):
		return kerr.NotEnoughReplicas.Code
	case errors.Is(err, partition.ErrNotEnoughReplicasAfterAppend):
		return kerr.NotEnoughReplicasAfterAppend.Code
	case errors.Is(err, partition.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, partition.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, ErrUnknownTopic), errors.Is(err, ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, ErrInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, ErrInvalidReplication):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, ErrNotController):
		return kerr.NotController.Code
	case errors.Is(err, ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, ErrPolicyViolation):
		return kerr.PolicyViolation.Code
	case errors.Is(err, ErrNotEnoughReplicas):
		return kerr.NotEnoughReplicas.Code
	case errors.Is(err, ErrBrokerNotAvailable):
		return kerr.BrokerNotAvailable.Code
	case errors.Is(err, ErrInvalidRequiredAcks):
		return kerr.InvalidRequiredAcks.Code
	case errors.Is(err, ErrLeaderNotAvailable):
		return kerr.LeaderNotAvailable.Code
	case errors.Is(err, ErrStaleISRChange):
		return kerr.FencedLeaderEpoch.Code
	case errors.Is(err, ErrInvalidISR):
		return kerr.InvalidRequest.Code
	case errors.Is(err, ErrReplicaNotAuthorized):
		return kerr.ClusterAuthorizationFailed.Code
	case errors.Is(err, ErrUnsupportedFeature):
		return kerr.UnsupportedVersion.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, context.Canceled):
		return kerr.NotLeaderForPartition.Code // shutting down: clients retry elsewhere
	}
	return kerr.UnknownServerError.Code
}

// errorMessage is the text for responses that carry one.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
