package protocol

// DescribeGroups v0-v5: see group/15_describe_groups.go and groupHandler.

func init() { register(15, 0, 5, groupHandler) }
