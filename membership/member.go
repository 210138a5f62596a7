package membership

import (
	"net"
	"strconv"

	"github.com/hashicorp/serf/serf"
)

// Status is a member's state as this node currently believes it.
type Status int

const (
	// StatusAlive: the member answers probes.
	StatusAlive Status = iota
	// StatusLeaving: the member announced a graceful leave that has not
	// completed yet.
	StatusLeaving
	// StatusLeft: the member left gracefully.
	StatusLeft
	// StatusFailed: the member stopped answering without leaving.
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	default:
		return "Status(" + strconv.Itoa(int(s)) + ")"
	}
}

// Member is one node of the cluster.
type Member struct {
	Name   string            // serf node name = mlog node id, e.g. "node-1"
	Addr   string            // serf host:port
	Tags   map[string]string // a copy; callers may keep or modify it
	Status Status
}

// EventType says what happened to a member.
type EventType int

const (
	// EventJoin: a member joined (or came back after failing).
	EventJoin EventType = iota
	// EventLeave: a member left gracefully.
	EventLeave
	// EventFailed: a member stopped answering without leaving.
	EventFailed
	// EventUpdate: a member changed its tags.
	EventUpdate
	// EventReap: a failed or left member was forgotten for good.
	EventReap
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventFailed:
		return "failed"
	case EventUpdate:
		return "update"
	case EventReap:
		return "reap"
	default:
		return "EventType(" + strconv.Itoa(int(t)) + ")"
	}
}

// Event is one member's change. Serf batches members into one event; they
// are delivered here one Event per member.
type Event struct {
	Type   EventType
	Member Member
}

// fromSerfMember copies a serf member, so nothing handed out aliases
// serf's state.
func fromSerfMember(sm serf.Member) Member {
	addr := ""
	if sm.Addr != nil {
		addr = net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port)))
	}
	return Member{
		Name:   sm.Name,
		Addr:   addr,
		Tags:   copyTags(sm.Tags),
		Status: fromSerfStatus(sm.Status),
	}
}

func fromSerfStatus(s serf.MemberStatus) Status {
	switch s {
	case serf.StatusAlive:
		return StatusAlive
	case serf.StatusLeaving:
		return StatusLeaving
	case serf.StatusLeft:
		return StatusLeft
	default:
		// serf.StatusNone never reaches a member list; anything unknown is
		// reported as not alive rather than guessed alive.
		return StatusFailed
	}
}

// fromSerfEvent expands a serf member event into one Event per member.
// ok is false for events this package ignores (user events, queries).
func fromSerfEvent(e serf.Event) (events []Event, ok bool) {
	me, isMember := e.(serf.MemberEvent)
	if !isMember {
		return nil, false
	}
	var t EventType
	switch me.Type {
	case serf.EventMemberJoin:
		t = EventJoin
	case serf.EventMemberLeave:
		t = EventLeave
	case serf.EventMemberFailed:
		t = EventFailed
	case serf.EventMemberUpdate:
		t = EventUpdate
	case serf.EventMemberReap:
		t = EventReap
	default:
		return nil, false
	}
	events = make([]Event, 0, len(me.Members))
	for _, sm := range me.Members {
		events = append(events, Event{Type: t, Member: fromSerfMember(sm)})
	}
	return events, true
}
