// Package replication moves records from partition leaders to followers by
// pull, as Kafka does: one Fetcher per source broker fetches every
// partition this broker follows from it, with Fetch requests carrying this
// broker's replica id. Before fetching a partition for the first time under
// a leader, the fetcher asks the leader where its own latest leader epoch
// ended (OffsetForLeaderEpoch) and truncates exactly there (KIP-101,
// KIP-279), never blindly to the high watermark. Fetched batches are
// appended as the leader wrote them; the high watermark comes from the
// leader's response. Each fetcher keeps a fetch session with its leader
// (KIP-227, session.go): after the first round a request names only the
// partitions whose position moved, and the reply only partitions with
// something new.
//
// Leader-side tracking (followers' log ends, ISR, high watermark) lives with
// the replica in package partition; the broker forwards ISR proposals to
// the controller.
package replication
