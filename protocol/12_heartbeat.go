package protocol

// Heartbeat v0-v4: answered by the group coordinator (package group) of the
// broker leading the group's __consumer_offsets partition; elsewhere
// NOT_COORDINATOR, so clients find the coordinator again.

func init() { register(12, 0, 4, groupHandler) }
