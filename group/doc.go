// Package group is the consumer-group coordinator. Group g belongs to
// partition PartitionFor(g, n) of the internal topic __consumer_offsets;
// the broker leading that partition coordinates the group. Its committed
// offsets and group metadata are records in that partition, in Kafka's own
// schemas (OffsetCommitKey/Value, GroupMetadataKey/Value), appended with
// acks=all, so another broker that takes the partition over replays them
// and a coordinator's death loses nothing committed.
//
// The classic group protocol: Empty -> PreparingRebalance ->
// CompletingRebalance -> Stable (and Dead when deleted), with session and
// rebalance timeouts, member ids (MEMBER_ID_REQUIRED from JoinGroup v4),
// static membership (group.instance.id), a protocol every member supports,
// and the leader's assignment passed through unread. Simple consumers that
// commit offsets with a group id and no membership work too.
//
// The package answers kmsg requests with kmsg responses, one file per API
// key (11_join_group.go, ...) registering its mapping for Handle; the broker
// routes them here and supplies each offsets partition as a Log.
package group
