package protocol

// OffsetDelete v0-v0: see group/47_offset_delete.go and groupHandler.

func init() { register(47, 0, 0, groupHandler) }
