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

// Domains holds the domains themselves. Every other method names its
// domain (or takes a value that does); one for a domain that does not
// exist is ENOTFOUND.
type Domains interface {
	// AddDomain creates an empty domain (ECONFLICT when it exists) and
	// records it in the domain log.
	AddDomain(ctx context.Context, name string, at time.Time) error
	// Domains lists every domain by name.
	Domains(ctx context.Context) ([]Domain, error)
	// RemoveDomain deletes a domain and everything in it (ENOTFOUND), in
	// one transaction: refused with ECONFLICT while it has users unless
	// force; its live sessions are ended (reason "revoked", in the session
	// end log) and their ids returned; the removal is in the domain log.
	RemoveDomain(ctx context.Context, name string, force bool, at time.Time) (ended []string, err error)
	// DomainChanges returns the domain log's entries after seq, oldest
	// first, at most limit; LastDomainChange is its newest seq (0 if none).
	DomainChanges(ctx context.Context, after int64, limit int) ([]DomainChange, error)
	LastDomainChange(ctx context.Context) (int64, error)
}

// Directory holds each domain's users and groups.
type Directory interface {
	// PutGroup creates or replaces a group of g.Domain and its permissions.
	PutGroup(ctx context.Context, g Group) error
	Groups(ctx context.Context, domain string) ([]Group, error)
	// AddUser creates a user in an existing group of u.Domain (ENOTFOUND
	// otherwise); ECONFLICT when the name is taken in that domain. It
	// returns the user with its ID.
	AddUser(ctx context.Context, u User) (User, error)
	// UpdateUser changes the group and password hash of u.Domain's user
	// u.Name (ENOTFOUND) and, in the same transaction, ends every live
	// session of the user (reason "revoked", recorded in the session end
	// log); it returns their ids.
	UpdateUser(ctx context.Context, u User, at time.Time) (ended []string, err error)
	// DeleteUser deletes a user (ENOTFOUND) and ends its live sessions in
	// the same transaction, as UpdateUser does. A user's id is never
	// reused, so no later user can inherit a session.
	DeleteUser(ctx context.Context, domain, name string, at time.Time) (ended []string, err error)
	// UserByName and UserByID fill in Domain and Permissions. An id is
	// unique across domains, so UserByID needs none; its caller checks
	// that the user's domain is the one it serves.
	UserByName(ctx context.Context, domain, name string) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	Users(ctx context.Context, domain string) ([]User, error)
}

// SettingsStore holds each domain's JWT tab setting and its change record.
type SettingsStore interface {
	// Settings returns DefaultSettings until a value has been saved.
	Settings(ctx context.Context, domain string) (Settings, error)
	// SaveSettings stores s and records c in one transaction.
	SaveSettings(ctx context.Context, domain string, s Settings, c SettingsChange) error
	// SettingsChanges returns the newest changes first, at most limit.
	SettingsChanges(ctx context.Context, domain string, limit int) ([]SettingsChange, error)
}

// SessionStore holds sessions and their last activity.
type SessionStore interface {
	// CreateSession stores a new session of s.Domain (ENOTFOUND if the
	// domain does not exist).
	CreateSession(ctx context.Context, s Session) error
	// Session returns one session, revoked or not, with its Domain
	// (ENOTFOUND). Session ids are unique across domains.
	Session(ctx context.Context, id string) (Session, error)
	// LiveSessions returns every session not revoked, of every domain: what
	// a starting node loads.
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
	// username and domain, and reports how many: a token authenticates
	// only as the user it was issued to.
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
	Domains
	Directory
	SettingsStore
	SessionStore
	// Checkpoint folds the write-ahead log back into the main file so that
	// it does not grow on a small disk; called on a schedule.
	Checkpoint(ctx context.Context) error
	Close() error
}
