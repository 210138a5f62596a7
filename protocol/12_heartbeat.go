package protocol

// Heartbeat v0-v4: see group/12_heartbeat.go and groupHandler.

func init() { register(12, 0, 4, groupHandler) }
