package protocol

// DescribeGroups v0-v5: answered by the group coordinator (package group) of the
// broker leading the group's __consumer_offsets partition; elsewhere
// NOT_COORDINATOR, so clients find the coordinator again.

func init() { register(15, 0, 5, groupHandler) }
