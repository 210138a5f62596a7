package cluster

import (
	"context"
	"maps"
)

// SCRAM mechanisms as Kafka numbers them (AlterUserScramCredentials).
const (
	ScramSHA256 int8 = 1
	ScramSHA512 int8 = 2
)

// ScramCredential is one mechanism's credential of a user (RFC 5802): the
// salt and iteration count the client derives its salted password with, and
// the stored and server keys the server checks a proof with. The password
// and the salted password are never kept.
type ScramCredential struct {
	Salt       []byte `json:"salt"`
	Iterations int32  `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// User is a principal's SCRAM credentials by mechanism.
type User struct {
	Scram map[int8]ScramCredential `json:"scram"`
}

// Credential returns the user's credential for mech; a nil user has none.
func (u *User) Credential(mech int8) (ScramCredential, bool) {
	if u == nil {
		return ScramCredential{}, false
	}
	c, ok := u.Scram[mech]
	return c, ok
}

// ScramUpsert sets a user's credential for one mechanism.
type ScramUpsert struct {
	User       string          `json:"user"`
	Mechanism  int8            `json:"mechanism"`
	Credential ScramCredential `json:"credential"`
}

// ScramDeletion removes a user's credential for one mechanism.
type ScramDeletion struct {
	User      string `json:"user"`
	Mechanism int8   `json:"mechanism"`
}

// AlterScram changes SCRAM credentials: deletions first, then upserts.
// The controller validates them before proposing; applying cannot fail.
type AlterScram struct {
	Deletions []ScramDeletion `json:"deletions,omitempty"`
	Upserts   []ScramUpsert   `json:"upserts,omitempty"`
}

// CmdAlterScram is AlterScram's command type.
const CmdAlterScram = "alter_scram"

// applyAlterScram changes the draft's users, copying each user it touches
// (published states are never changed).
func (d *draft) applyAlterScram(a AlterScram) {
	if d.Users == nil {
		d.Users = map[string]*User{}
	}
	user := func(name string) *User {
		u := &User{Scram: map[int8]ScramCredential{}}
		if old := d.Users[name]; old != nil {
			u.Scram = maps.Clone(old.Scram)
		}
		d.Users[name] = u
		return u
	}
	for _, del := range a.Deletions {
		if d.Users[del.User] == nil {
			continue
		}
		u := user(del.User)
		delete(u.Scram, del.Mechanism)
		if len(u.Scram) == 0 {
			delete(d.Users, del.User)
		}
	}
	for _, up := range a.Upserts {
		user(up.User).Scram[up.Mechanism] = up.Credential
	}
}

// AlterScram commits credential changes. Controller only.
func (c *Controller) AlterScram(ctx context.Context, a AlterScram) error {
	_, err := c.node.Apply(ctx, CmdAlterScram, a)
	return err
}
