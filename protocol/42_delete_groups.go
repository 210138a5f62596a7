package protocol

// DeleteGroups v0-v2: answered by the group coordinator (package group) of the
// broker leading the group's __consumer_offsets partition; elsewhere
// NOT_COORDINATOR, so clients find the coordinator again.

func init() { register(42, 0, 2, groupHandler) }
