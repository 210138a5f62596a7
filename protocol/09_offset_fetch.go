package protocol

// OffsetFetch v0-v8: answered by the group coordinator (package group) of the
// broker leading the group's __consumer_offsets partition; elsewhere
// NOT_COORDINATOR, so clients find the coordinator again.

func init() { register(9, 0, 8, groupHandler) }
