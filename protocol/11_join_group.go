package protocol

// JoinGroup v0-v9: answered by the group coordinator (package group) of the
// broker leading the group's __consumer_offsets partition; elsewhere
// NOT_COORDINATOR, so clients find the coordinator again.

func init() { register(11, 0, 9, groupHandler) }
