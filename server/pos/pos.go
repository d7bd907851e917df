// Package pos holds idleguard's domain: users and their groups'
// permissions, sessions, and the JWT Expiration Time setting. It is plain
// types and the interfaces that storage packages implement; no I/O.
package pos

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"time"

	"idleguard/server/protocol"
)

// Permission is a right a group grants, named as the POS names it.
type Permission string

const (
	// DeveloperView opens Developer Configuration (and reads the JWT tab).
	DeveloperView Permission = "developer.view"
	// DeveloperEdit saves Developer Configuration.
	DeveloperEdit Permission = "developer.edit"
)

// KnownPermissions lists every permission a group may hold.
var KnownPermissions = []Permission{DeveloperView, DeveloperEdit}

// Group is a set of users of one domain sharing permissions.
type Group struct {
	Domain      string
	Name        string
	Permissions []Permission
}

// User is someone who signs in to one domain's POS. IDs are unique across
// domains and never reused; names are unique within a domain.
type User struct {
	ID           int64
	Domain       string
	Name         string
	Group        string
	PasswordHash []byte
	// Permissions are the user's group's, filled in by the store.
	Permissions []Permission
}

// Title is the permission as the POS's screens name it.
func (p Permission) Title() string {
	switch p {
	case DeveloperView:
		return "Developer → View"
	case DeveloperEdit:
		return "Developer → Edit"
	}
	return string(p)
}

// Known reports whether p is a permission idleguard knows.
func (p Permission) Known() bool { return slices.Contains(KnownPermissions, p) }

// Can reports whether the user's group grants p.
func (u User) Can(p Permission) bool { return slices.Contains(u.Permissions, p) }

// Session is one sign-in: every tab and device holding its tokens shares it.
// Times read back from storage carry no monotonic reading; the idle clock
// rebases them on the monotonic clock when it loads them.
type Session struct {
	ID           string // unique across domains
	Domain       string
	UserID       int64
	Username     string
	Created      time.Time
	LastActivity time.Time
	// Revoked is set once the session has ended; it never comes back.
	Revoked       bool
	RevokedAt     time.Time
	RevokedReason protocol.Reason
}

// NewSessionID returns a new random session id (144 bits, base64url).
func NewSessionID() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Activity is a session's last-activity time, written behind in batches.
type Activity struct {
	SessionID    string
	LastActivity time.Time
}

// Revocation ends one session: when and why.
type Revocation struct {
	SessionID string
	At        time.Time
	Reason    protocol.Reason
}

// SessionEnd is one entry of the session end log: a session ended outside
// the idle clock (sign-out, revocation, a user deleted or changed).
type SessionEnd struct {
	Seq       int64
	SessionID string
	Reason    protocol.Reason
}

// Expiration Time bounds, in seconds.
const (
	DefaultExpirationSeconds = 172800                        // 2 days, as the POS ships
	MaxExpirationSeconds     = protocol.MaxExpirationSeconds // 365 days, one bound for the API and the wire
)

// Settings is the Developer Configuration's JWT tab.
type Settings struct {
	ExpirationSeconds int64
	UpdatedBy         string // empty until first saved
	UpdatedAt         time.Time
}

// Expiration is the setting as a duration.
func (s Settings) Expiration() time.Duration {
	return time.Duration(s.ExpirationSeconds) * time.Second
}

// DefaultSettings is what a new installation starts with.
func DefaultSettings() Settings { return Settings{ExpirationSeconds: DefaultExpirationSeconds} }

// SettingsChange records who changed the Expiration Time, when, from what to
// what.
type SettingsChange struct {
	At  time.Time
	By  string
	Old int64
	New int64
}
