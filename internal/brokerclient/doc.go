// Package brokerclient is the Kafka client brokers use to talk to each
// other: follower fetches (package replication) and requests forwarded to
// the controller (package broker). One connection per broker, one request
// at a time, kmsg bodies at the versions the caller sets; nothing of a
// user-facing client (no metadata, no routing, no retries).
package brokerclient
