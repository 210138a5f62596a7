package protocol

// ListGroups v0-v4: see group/16_list_groups.go and groupHandler.

func init() { register(16, 0, 4, groupHandler) }
