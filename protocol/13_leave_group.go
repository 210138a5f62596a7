package protocol

// LeaveGroup v0-v5: see group/13_leave_group.go and groupHandler.

func init() { register(13, 0, 5, groupHandler) }
