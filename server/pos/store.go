package pos

import (
	"context"
	"time"

	"idleguard/server/protocol"
)

// The stores are split along what a many-node deployment shares: sessions
// and settings move to Redis there, while the directory may stay in SQL.
// Every method returns an *Error with ENOTFOUND or ECONFLICT where it says
// so, and wraps anything else with context. A sign-out reason is a
// protocol.Reason everywhere; only the SQL stores its word.

// Directory holds users and groups.
type Directory interface {
	// PutGroup creates or replaces a group and its permissions.
	PutGroup(ctx context.Context, g Group) error
	Groups(ctx context.Context) ([]Group, error)
	// AddUser creates a user in an existing group (ENOTFOUND otherwise);
	// ECONFLICT when the name is taken. It returns the user with its ID.
	AddUser(ctx context.Context, u User) (User, error)
	// UpdateUser changes a user's group and password hash (ENOTFOUND) and,
	// in the same transaction, ends every live session of the user (reason
	// "revoked", recorded in the session end log); it returns their ids.
	UpdateUser(ctx context.Context, u User, at time.Time) (ended []string, err error)
	// DeleteUser deletes a user (ENOTFOUND) and ends its live sessions in
	// the same transaction, as UpdateUser does. A user's id is never
	// reused, so no later user can inherit a session.
	DeleteUser(ctx context.Context, name string, at time.Time) (ended []string, err error)
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
	// RevokeSession ends a session for good (ENOTFOUND if unknown);
	// revoking twice is no error and keeps the first time and reason. A
	// session it ends is recorded in the session end log.
	RevokeSession(ctx context.Context, id string, at time.Time, reason protocol.Reason) error
	// RevokeUserSessions ends every live session of a user, records each
	// in the session end log, and returns their ids.
	RevokeUserSessions(ctx context.Context, userID int64, at time.Time, reason protocol.Reason) ([]string, error)
	// RevokeOrphanSessions ends (reason "revoked", logged) every live
	// session whose user no longer exists or no longer has the session's
	// username, and reports how many: a token authenticates only as the
	// user it was issued to.
	RevokeOrphanSessions(ctx context.Context, at time.Time) (int, error)
	// SessionEnds returns the session end log's entries after seq, oldest
	// first, at most limit: how a running server learns of sessions that
	// another process (the CLI) or node ended. LastSessionEnd is the log's
	// newest seq (0 when empty), where a starting server begins reading.
	SessionEnds(ctx context.Context, after int64, limit int) ([]SessionEnd, error)
	LastSessionEnd(ctx context.Context) (int64, error)
	// RevokeSessions ends many sessions in one transaction (the idle
	// clock's expiries, written behind); unknown IDs are skipped and a
	// session already revoked keeps its first time and reason.
	RevokeSessions(ctx context.Context, batch []Revocation) error
	// PurgeSessions deletes sessions revoked before the given time, and
	// session end log entries as old, in small batches so that the writer
	// is never held for long, and reports how many sessions.
	PurgeSessions(ctx context.Context, revokedBefore time.Time) (int, error)
}

// Store is everything one node needs.
type Store interface {
	Directory
	SettingsStore
	SessionStore
	// Checkpoint folds the write-ahead log back into the main file so that
	// it does not grow on a small disk; called on a schedule.
	Checkpoint(ctx context.Context) error
	Close() error
}
