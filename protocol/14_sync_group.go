package protocol

// SyncGroup v0-v5: see group/14_sync_group.go and groupHandler.

func init() { register(14, 0, 5, groupHandler) }
