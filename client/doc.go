// Package client is mlog's own small Go client: a producer
// (Produce, ProduceBatch with an ack mode), a consumer that reads by offset
// and commits its position under an id (Fetch, CommitOffset, FetchOffset),
// and an admin client (CreateTopic, ListTopics, DeleteTopic). It is a thin
// layer over franz-go's kgo and kadm speaking the Kafka protocol, so the
// same calls work against Apache Kafka; use kgo directly for partitions,
// consumer groups and streaming.
//
// Its request types live in this package (client.ProduceRequest), because
// mlog's protocol package is the broker's side of the Kafka wire protocol.
package client
