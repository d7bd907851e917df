package guard

import (
	"context"
	"time"
)

// The stores are split along what a many-node deployment shares: sessions
// and settings move to Redis there, while the directory may stay in SQL.
// Every method returns an *Error with ENOTFOUND or ECONFLICT where it says
// so, and wraps anything else with context.

// Directory holds users and groups.
type Directory interface {
	// PutGroup creates or replaces a group and its permissions.
	PutGroup(ctx context.Context, g Group) error
	Groups(ctx context.Context) ([]Group, error)
	// AddUser creates a user in an existing group (ENOTFOUND otherwise);
	// ECONFLICT when the name is taken. It returns the user with its ID.
	AddUser(ctx context.Context, u User) (User, error)
	// UpdateUser changes a user's group and password hash (ENOTFOUND).
	UpdateUser(ctx context.Context, u User) error
	DeleteUser(ctx context.Context, name string) error
	// UserByName and UserByID fill in Permissions from the group.
	UserByName(ctx context.Context, name string) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	Users(ctx context.Context) ([]User, error)
}

// SettingsStore holds the JWT tab's setting and its change record.
type SettingsStore interface {
	// Settings returns DefaultSettings until a value has been saved.
	Settings(ctx context.Context) (Settings, error)
	// SaveSettings stores s and records c in one transaction.
	SaveSettings(ctx context.Context, s Settings, c SettingsChange) error
	// SettingsChanges returns the newest changes first, at most limit.
	SettingsChanges(ctx context.Context, limit int) ([]SettingsChange, error)
}

// SessionStore holds sessions and their last activity.
type SessionStore interface {
	CreateSession(ctx context.Context, s Session) error
	// Session returns one session, revoked or not (ENOTFOUND).
	Session(ctx context.Context, id string) (Session, error)
	// LiveSessions returns every session not revoked.
	LiveSessions(ctx context.Context) ([]Session, error)
	// SaveActivity writes last-activity times in one transaction. A time
	// never moves backwards and a revoked session is left alone.
	SaveActivity(ctx context.Context, batch []Activity) error
	// RevokeSession ends a session for good; revoking twice is no error.
	RevokeSession(ctx context.Context, id string, at time.Time, reason string) error
	// RevokeSessions ends many sessions in one transaction (the idle
	// clock's expiries, written behind); unknown IDs are skipped and a
	// session already revoked keeps its first time and reason.
	RevokeSessions(ctx context.Context, batch []Revocation) error
	// PurgeSessions deletes sessions revoked before the given time and
	// reports how many.
	PurgeSessions(ctx context.Context, revokedBefore time.Time) (int, error)
}

// Store is everything one node needs.
type Store interface {
	Directory
	SettingsStore
	SessionStore
	Close() error
}
