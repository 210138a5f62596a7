package protocol

// OffsetCommit v0-v8: see group/08_offset_commit.go and groupHandler.

func init() { register(8, 0, 8, groupHandler) }
