package protocol

// OffsetFetch v0-v8: see group/09_offset_fetch.go and groupHandler.

func init() { register(9, 0, 8, groupHandler) }
