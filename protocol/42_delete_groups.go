package protocol

// DeleteGroups v0-v2: see group/42_delete_groups.go and groupHandler.

func init() { register(42, 0, 2, groupHandler) }
