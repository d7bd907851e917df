package storetest

import (
	"context"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// Impl is one implementation of pos.Store, as the contract suite opens it.
type Impl struct {
	// New makes new storage (a file, a database) holding only the empty
	// default domain, and returns what opens a store on it. Each store it
	// opens is closed when the test ends; one opened after another was
	// closed sees everything that one wrote, as after a restart.
	New func(t *testing.T) (open func(t *testing.T) pos.Store)
	// Rows counts the rows s keeps in table, those of domain only unless
	// domain is empty: how the suite sees that a removed domain leaves
	// nothing behind and a refused call stores nothing, which the interface
	// cannot show. The tables are users, groups, group_permissions,
	// settings, settings_changes, sessions and domain_changes, each with a
	// domain column.
	Rows func(t *testing.T, s pos.Store, table, domain string) int
}

// Contract runs the behaviour tests that every pos.Store must pass, each
// on new storage, in parallel where they do not share a store.
func Contract(t *testing.T, impl Impl) {
	c := contract{impl}
	for _, tc := range []struct {
		name string
		run  func(*testing.T, contract)
	}{
		{"Directory", testDirectory},
		{"Settings", testSettings},
		{"Sessions", testSessions},
		{"RevokeSessions", testRevokeSessions},
		{"Reopen", testReopen},
		{"ConcurrentWrites", testConcurrentWrites},
		{"ConcurrentActivity", testConcurrentActivity},
		{"PutGroupTogether", testPutGroupTogether},
		{"ErrorsWrapped", testErrorsWrapped},
		{"UserChangesEndSessions", testUserChangesEndSessions},
		{"SessionEndLog", testSessionEndLog},
		{"RevokeOrphanSessions", testRevokeOrphanSessions},
		{"Domains", testDomains},
		{"DomainLog", testDomainLog},
		{"DomainIsolation", testDomainIsolation},
		{"UnknownDomain", testUnknownDomain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, c)
		})
	}
}

// contract is the suite's view of one implementation.
type contract struct{ impl Impl }

// open opens a store on new storage.
func (c contract) open(t *testing.T) pos.Store { return c.impl.New(t)(t) }

// rows is Impl.Rows.
func (c contract) rows(t *testing.T, s pos.Store, table, domain string) int {
	t.Helper()
	return c.impl.Rows(t, s, table, domain)
}

// t0 is a whole millisecond: stored times keep millisecond precision.
var t0 = time.UnixMilli(1_767_225_600_000)

func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func mustNoErr(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := pos.ErrorCode(err); got != code {
		tb.Fatalf("error code: got %q (%v), want %q", got, err, code)
	}
}

// seed creates two groups and two users in the default domain.
func seed(tb testing.TB, db pos.Store) (admin, clerk pos.User) {
	tb.Helper()
	return seedDomain(tb, db, pos.DefaultDomain)
}

// seedDomain creates groups developers and cashiers and users admin (h1)
// and clerk (h2) in an existing domain.
func seedDomain(tb testing.TB, db pos.Store, domain string) (admin, clerk pos.User) {
	tb.Helper()
	ctx := context.Background()
	mustNoErr(tb, db.PutGroup(ctx, pos.Group{Domain: domain, Name: "developers",
		Permissions: []pos.Permission{pos.DeveloperEdit, pos.DeveloperView}}))
	mustNoErr(tb, db.PutGroup(ctx, pos.Group{Domain: domain, Name: "cashiers"}))
	admin, err := db.AddUser(ctx, pos.User{Domain: domain, Name: "admin", Group: "developers", PasswordHash: []byte("h1")})
	mustNoErr(tb, err)
	clerk, err = db.AddUser(ctx, pos.User{Domain: domain, Name: "clerk", Group: "cashiers", PasswordHash: []byte("h2")})
	mustNoErr(tb, err)
	return admin, clerk
}

// mustAddDomain adds a domain at t0.
func mustAddDomain(tb testing.TB, db pos.Store, name string) {
	tb.Helper()
	mustNoErr(tb, db.AddDomain(context.Background(), name, t0))
}

// domainNames lists the domains by name.
func domainNames(tb testing.TB, db pos.Store) []string {
	tb.Helper()
	domains, err := db.Domains(context.Background())
	mustNoErr(tb, err)
	var names []string
	for _, d := range domains {
		names = append(names, d.Name)
	}
	return names
}

// mustDomainChanges reads the whole domain log after seq, as
// "domain:added" or "domain:removed".
func mustDomainChanges(tb testing.TB, db pos.Store, after int64) []string {
	tb.Helper()
	changes, err := db.DomainChanges(context.Background(), after, 1000)
	mustNoErr(tb, err)
	var got []string
	for _, c := range changes {
		what := "added"
		if c.Removed {
			what = "removed"
		}
		got = append(got, c.Domain+":"+what)
	}
	return got
}

// mustCreateSessions creates live sessions of a user, all at t0.
func mustCreateSessions(tb testing.TB, db pos.Store, u pos.User, ids ...string) {
	tb.Helper()
	for _, id := range ids {
		mustNoErr(tb, db.CreateSession(context.Background(),
			pos.Session{Domain: u.Domain, ID: id, UserID: u.ID, Username: u.Name, Created: t0, LastActivity: t0}))
	}
}

// mustSessionEnds reads the whole session end log after seq.
func mustSessionEnds(tb testing.TB, db pos.Store, after int64) []pos.SessionEnd {
	tb.Helper()
	ends, err := db.SessionEnds(context.Background(), after, 1000)
	mustNoErr(tb, err)
	return ends
}

// endIDs is each entry's session ID and reason, "id:reason".
func endIDs(ends []pos.SessionEnd) []string {
	var got []string
	for _, e := range ends {
		got = append(got, e.SessionID+":"+e.Reason.String())
	}
	return got
}

// wantEnded checks that a session ended at at(ms) for reason.
func wantEnded(tb testing.TB, db pos.Store, id string, ms int64, reason protocol.Reason) {
	tb.Helper()
	s, err := db.Session(context.Background(), id)
	mustNoErr(tb, err)
	if !s.Revoked || !s.RevokedAt.Equal(at(ms)) || s.RevokedReason != reason {
		tb.Errorf("session %s: got revoked %v at %v for %q, want revoked at t0+%dms for %q",
			id, s.Revoked, s.RevokedAt, s.RevokedReason, ms, reason)
	}
}

func wantLive(tb testing.TB, db pos.Store, id string) {
	tb.Helper()
	s, err := db.Session(context.Background(), id)
	mustNoErr(tb, err)
	if s.Revoked {
		tb.Errorf("session %s: got revoked at %v for %q, want live", id, s.RevokedAt, s.RevokedReason)
	}
}
