package protocol

// TxnOffsetCommit v0-v3: see group/28_txn_offset_commit.go and
// groupHandler.

func init() { register(28, 0, 3, groupHandler) }
