package protocol

// OffsetDelete v0-v0: answered by the group coordinator (package group) of the
// broker leading the group's __consumer_offsets partition; elsewhere
// NOT_COORDINATOR, so clients find the coordinator again.

func init() { register(47, 0, 0, groupHandler) }
