package protocol

// JoinGroup v0-v9: see group/11_join_group.go and groupHandler.

func init() { register(11, 0, 9, groupHandler) }
