package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// MustOpenDB opens a new database file in a temporary directory and closes
// it when the test ends.
func MustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpenPath(tb, filepath.Join(tb.TempDir(), "idleguard.db"))
}

func mustOpenPath(tb testing.TB, path string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
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
func seed(tb testing.TB, db *DB) (admin, clerk pos.User) {
	tb.Helper()
	return seedDomain(tb, db, pos.DefaultDomain)
}

// seedDomain creates groups developers and cashiers and users admin (h1)
// and clerk (h2) in an existing domain.
func seedDomain(tb testing.TB, db *DB, domain string) (admin, clerk pos.User) {
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

func TestOpen(t *testing.T) {
	t.Run("FileMode", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idleguard.db")
		db := mustOpenPath(t, path)
		seed(t, db) // writes reach the WAL file
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			mustNoErr(t, err)
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("%s mode: got %o, want 600", filepath.Base(p), got)
			}
		}
	})

	t.Run("Pragmas", func(t *testing.T) {
		db := MustOpenDB(t)
		ctx := context.Background()
		check := func(t *testing.T, q rowQuerier, pragma, want string) {
			t.Helper()
			var got string
			mustNoErr(t, q.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got))
			if got != want {
				t.Errorf("PRAGMA %s: got %q, want %q", pragma, got, want)
			}
		}
		// Every connection of both pools must carry the pragmas, so hold
		// several reader connections at once.
		var conns []rowQuerier
		w, err := db.w.Conn(ctx)
		mustNoErr(t, err)
		defer w.Close()
		conns = append(conns, w)
		for range 3 {
			r, err := db.r.Conn(ctx)
			mustNoErr(t, err)
			defer r.Close()
			conns = append(conns, r)
		}
		for i, c := range conns {
			t.Run(fmt.Sprint("conn", i), func(t *testing.T) {
				check(t, c, "journal_mode", "wal")
				check(t, c, "foreign_keys", "1")
				check(t, c, "synchronous", "1") // NORMAL
				check(t, c, "busy_timeout", "5000")
				check(t, c, "journal_size_limit", fmt.Sprint(journalSizeLimit))
			})
		}
		check(t, conns[1], "query_only", "1")
		check(t, conns[0], "query_only", "0")
	})

	t.Run("SchemaVersion", func(t *testing.T) {
		db := MustOpenDB(t)
		var got int
		mustNoErr(t, db.r.QueryRow("PRAGMA user_version").Scan(&got))
		if got != len(migrations) {
			t.Errorf("user_version: got %d, want %d", got, len(migrations))
		}
	})

	t.Run("NewerSchema", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idleguard.db")
		db, err := Open(context.Background(), path)
		mustNoErr(t, err)
		_, err = db.w.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1))
		mustNoErr(t, err)
		mustNoErr(t, db.Close())
		if db, err := Open(context.Background(), path); err == nil {
			db.Close()
			t.Fatal("Open of a newer schema: got nil error, want one")
		}
	})

	t.Run("MissingDirectory", func(t *testing.T) {
		_, err := Open(context.Background(), filepath.Join(t.TempDir(), "no", "such.db"))
		if err == nil {
			t.Fatal("got nil error, want one")
		}
		if got := pos.ErrorCode(err); got != pos.EINTERNAL {
			t.Errorf("error code: got %q, want %q", got, pos.EINTERNAL)
		}
	})

	t.Run("OddPath", func(t *testing.T) {
		// ? and # would end the path of a SQLite URI if not escaped.
		path := filepath.Join(t.TempDir(), "a?b#c%d.db")
		db := mustOpenPath(t, path)
		seed(t, db)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("stat %q: got %v, want the database there", path, err)
		}
	})
}

func TestDirectory(t *testing.T) {
	ctx := context.Background()

	t.Run("AddAndLookUp", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, clerk := seed(t, db)
		if admin.ID == 0 || clerk.ID == 0 || admin.ID == clerk.ID {
			t.Fatalf("IDs: got %d and %d, want two distinct non-zero", admin.ID, clerk.ID)
		}
		want := pos.User{ID: admin.ID, Domain: pos.DefaultDomain, Name: "admin", Group: "developers", PasswordHash: []byte("h1"),
			Permissions: []pos.Permission{pos.DeveloperEdit, pos.DeveloperView}}
		if !reflect.DeepEqual(admin, want) {
			t.Errorf("AddUser: got %+v, want %+v", admin, want)
		}
		got, err := db.UserByName(ctx, pos.DefaultDomain, "admin")
		mustNoErr(t, err)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("UserByName: got %+v, want %+v", got, want)
		}
		got, err = db.UserByID(ctx, admin.ID)
		mustNoErr(t, err)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("UserByID: got %+v, want %+v", got, want)
		}
		if !got.Can(pos.DeveloperEdit) {
			t.Errorf("Can(DeveloperEdit): got false, want true")
		}
		got, err = db.UserByName(ctx, pos.DefaultDomain, "clerk")
		mustNoErr(t, err)
		if len(got.Permissions) != 0 {
			t.Errorf("clerk permissions: got %v, want none", got.Permissions)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		db := MustOpenDB(t)
		seed(t, db)
		_, err := db.UserByName(ctx, pos.DefaultDomain, "nobody")
		wantCode(t, err, pos.ENOTFOUND)
		_, err = db.UserByID(ctx, 999)
		wantCode(t, err, pos.ENOTFOUND)
		_, err = db.UpdateUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "nobody", Group: "cashiers"}, t0)
		wantCode(t, err, pos.ENOTFOUND)
		_, err = db.DeleteUser(ctx, pos.DefaultDomain, "nobody", t0)
		wantCode(t, err, pos.ENOTFOUND)
	})

	t.Run("AddUserMissingGroup", func(t *testing.T) {
		db := MustOpenDB(t)
		_, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "x", Group: "ghosts"})
		wantCode(t, err, pos.ENOTFOUND)
		if got, want := pos.ErrorMessage(err), `group "ghosts" not found`; got != want {
			t.Errorf("message: got %q, want %q", got, want)
		}
		if _, err := db.UserByName(ctx, pos.DefaultDomain, "x"); pos.ErrorCode(err) != pos.ENOTFOUND {
			t.Errorf("user after failed AddUser: got %v, want ENOTFOUND", err)
		}
	})

	t.Run("AddUserConflict", func(t *testing.T) {
		db := MustOpenDB(t)
		seed(t, db)
		_, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "admin", Group: "cashiers", PasswordHash: []byte("other")})
		wantCode(t, err, pos.ECONFLICT)
		got, err := db.UserByName(ctx, pos.DefaultDomain, "admin")
		mustNoErr(t, err)
		if got.Group != "developers" || string(got.PasswordHash) != "h1" {
			t.Errorf("admin after conflict: got %+v, want unchanged", got)
		}
	})

	t.Run("UpdateUser", func(t *testing.T) {
		db := MustOpenDB(t)
		_, clerk := seed(t, db)
		_, err := db.UpdateUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "clerk", Group: "developers", PasswordHash: []byte("h3")}, t0)
		mustNoErr(t, err)
		got, err := db.UserByID(ctx, clerk.ID)
		mustNoErr(t, err)
		if got.Group != "developers" || string(got.PasswordHash) != "h3" || !got.Can(pos.DeveloperView) {
			t.Errorf("after UpdateUser: got %+v, want group developers, hash h3, developer.view", got)
		}
		_, err = db.UpdateUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "clerk", Group: "ghosts"}, t0)
		wantCode(t, err, pos.ENOTFOUND)
		if got, want := pos.ErrorMessage(err), `group "ghosts" not found`; got != want {
			t.Errorf("message: got %q, want %q", got, want)
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, _ := seed(t, db)
		// A session of the user must not block the delete (no foreign key);
		// it ends with the user, and its row stays until the purge.
		mustNoErr(t, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: "s1", UserID: admin.ID, Username: "admin", Created: t0, LastActivity: t0}))
		ended, err := db.DeleteUser(ctx, pos.DefaultDomain, "admin", at(7))
		mustNoErr(t, err)
		if want := []string{"s1"}; !reflect.DeepEqual(ended, want) {
			t.Errorf("DeleteUser ended: got %v, want %v", ended, want)
		}
		_, err = db.UserByName(ctx, pos.DefaultDomain, "admin")
		wantCode(t, err, pos.ENOTFOUND)
		if s, err := db.Session(ctx, "s1"); err != nil || !s.Revoked {
			t.Errorf("session after DeleteUser: got %+v, %v, want it kept and revoked", s, err)
		}
		users, err := db.Users(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if len(users) != 1 || users[0].Name != "clerk" {
			t.Errorf("Users: got %+v, want clerk only", users)
		}
	})

	t.Run("Users", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, clerk := seed(t, db)
		got, err := db.Users(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if want := []pos.User{admin, clerk}; !reflect.DeepEqual(got, want) {
			t.Errorf("Users: got %+v, want %+v", got, want)
		}
	})

	t.Run("PutGroupReplaces", func(t *testing.T) {
		db := MustOpenDB(t)
		seed(t, db)
		mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: pos.DefaultDomain, Name: "developers",
			Permissions: []pos.Permission{pos.DeveloperView, pos.DeveloperView}}))
		groups, err := db.Groups(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		want := []pos.Group{
			{Domain: pos.DefaultDomain, Name: "cashiers"},
			{Domain: pos.DefaultDomain, Name: "developers", Permissions: []pos.Permission{pos.DeveloperView}},
		}
		if !reflect.DeepEqual(groups, want) {
			t.Errorf("Groups: got %+v, want %+v", groups, want)
		}
		admin, err := db.UserByName(ctx, pos.DefaultDomain, "admin")
		mustNoErr(t, err)
		if admin.Can(pos.DeveloperEdit) {
			t.Errorf("admin Can(DeveloperEdit) after the group lost it: got true, want false")
		}
	})

	t.Run("EmptyPasswordHash", func(t *testing.T) {
		db := MustOpenDB(t)
		mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: pos.DefaultDomain, Name: "g"}))
		_, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "nohash", Group: "g"})
		mustNoErr(t, err)
		got, err := db.UserByName(ctx, pos.DefaultDomain, "nohash")
		mustNoErr(t, err)
		if len(got.PasswordHash) != 0 {
			t.Errorf("PasswordHash: got %q, want empty", got.PasswordHash)
		}
	})
}

func TestSettings(t *testing.T) {
	ctx := context.Background()

	t.Run("DefaultUntilSaved", func(t *testing.T) {
		db := MustOpenDB(t)
		got, err := db.Settings(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if want := pos.DefaultSettings(); got != want {
			t.Errorf("Settings: got %+v, want %+v", got, want)
		}
		changes, err := db.SettingsChanges(ctx, pos.DefaultDomain, 10)
		mustNoErr(t, err)
		if len(changes) != 0 {
			t.Errorf("SettingsChanges: got %+v, want none", changes)
		}
	})

	t.Run("SaveIsAtomic", func(t *testing.T) {
		db := MustOpenDB(t)
		s := pos.Settings{ExpirationSeconds: 60, UpdatedBy: "admin", UpdatedAt: at(1)}
		c := pos.SettingsChange{At: at(1), By: "admin", Old: pos.DefaultExpirationSeconds, New: 60}
		mustNoErr(t, db.SaveSettings(ctx, pos.DefaultDomain, s, c))
		got, err := db.Settings(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if got.ExpirationSeconds != 60 || got.UpdatedBy != "admin" || !got.UpdatedAt.Equal(at(1)) {
			t.Errorf("Settings: got %+v, want %+v", got, s)
		}
		changes, err := db.SettingsChanges(ctx, pos.DefaultDomain, 10)
		mustNoErr(t, err)
		if len(changes) != 1 || changes[0].By != "admin" || changes[0].Old != pos.DefaultExpirationSeconds ||
			changes[0].New != 60 || !changes[0].At.Equal(at(1)) {
			t.Errorf("SettingsChanges: got %+v, want [%+v]", changes, c)
		}

		// A failed save (here: a cancelled context) leaves both as they were.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		err = db.SaveSettings(cancelled, pos.DefaultDomain, pos.Settings{ExpirationSeconds: 90}, pos.SettingsChange{New: 90})
		if err == nil {
			t.Fatal("SaveSettings with a cancelled context: got nil error, want one")
		}
		got, err = db.Settings(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if got.ExpirationSeconds != 60 {
			t.Errorf("after failed save: got %d, want 60", got.ExpirationSeconds)
		}
		changes, err = db.SettingsChanges(ctx, pos.DefaultDomain, 10)
		mustNoErr(t, err)
		if len(changes) != 1 {
			t.Errorf("changes after failed save: got %d, want 1", len(changes))
		}
	})

	t.Run("ChangesNewestFirst", func(t *testing.T) {
		db := MustOpenDB(t)
		old := int64(pos.DefaultExpirationSeconds)
		for i, n := range []int64{60, 120, 86400} {
			mustNoErr(t, db.SaveSettings(ctx, pos.DefaultDomain,
				pos.Settings{ExpirationSeconds: n, UpdatedBy: "admin", UpdatedAt: at(int64(i))},
				pos.SettingsChange{At: at(int64(i)), By: "admin", Old: old, New: n}))
			old = n
		}
		changes, err := db.SettingsChanges(ctx, pos.DefaultDomain, 2)
		mustNoErr(t, err)
		var got []int64
		for _, c := range changes {
			got = append(got, c.New)
		}
		if want := []int64{86400, 120}; !reflect.DeepEqual(got, want) {
			t.Errorf("SettingsChanges(2) New: got %v, want %v", got, want)
		}
		if changes, _ := db.SettingsChanges(ctx, pos.DefaultDomain, 0); len(changes) != 0 {
			t.Errorf("SettingsChanges(0): got %d, want 0", len(changes))
		}
		s, err := db.Settings(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if s.ExpirationSeconds != 86400 {
			t.Errorf("Settings: got %d, want 86400", s.ExpirationSeconds)
		}
	})
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	newSession := func(id string, created int64) pos.Session {
		return pos.Session{Domain: pos.DefaultDomain, ID: id, UserID: 1, Username: "admin", Created: at(created), LastActivity: at(created)}
	}

	t.Run("CreateAndGet", func(t *testing.T) {
		db := MustOpenDB(t)
		want := newSession("s1", 0)
		mustNoErr(t, db.CreateSession(ctx, want))
		got, err := db.Session(ctx, "s1")
		mustNoErr(t, err)
		if got.ID != want.ID || got.UserID != want.UserID || got.Username != want.Username ||
			!got.Created.Equal(want.Created) || !got.LastActivity.Equal(want.LastActivity) ||
			got.Revoked || !got.RevokedAt.IsZero() || got.RevokedReason != protocol.ReasonNone {
			t.Errorf("Session: got %+v, want %+v", got, want)
		}
		wantCode(t, db.CreateSession(ctx, want), pos.ECONFLICT)
		_, err = db.Session(ctx, "nope")
		wantCode(t, err, pos.ENOTFOUND)
	})

	t.Run("LiveSessions", func(t *testing.T) {
		db := MustOpenDB(t)
		for i, id := range []string{"a", "b", "c"} {
			mustNoErr(t, db.CreateSession(ctx, newSession(id, int64(i))))
		}
		mustNoErr(t, db.RevokeSession(ctx, "b", at(10), protocol.ReasonSignedOut))
		live, err := db.LiveSessions(ctx)
		mustNoErr(t, err)
		var got []string
		for _, s := range live {
			got = append(got, s.ID)
		}
		if want := []string{"a", "c"}; !reflect.DeepEqual(got, want) {
			t.Errorf("LiveSessions: got %v, want %v", got, want)
		}
	})

	t.Run("SaveActivity", func(t *testing.T) {
		db := MustOpenDB(t)
		mustNoErr(t, db.CreateSession(ctx, newSession("a", 0)))
		mustNoErr(t, db.CreateSession(ctx, newSession("b", 0)))
		mustNoErr(t, db.CreateSession(ctx, newSession("gone", 0)))
		mustNoErr(t, db.RevokeSession(ctx, "gone", at(5), protocol.ReasonIdle))
		mustNoErr(t, db.SaveActivity(ctx, []pos.Activity{
			{SessionID: "a", LastActivity: at(100)},
			{SessionID: "b", LastActivity: at(50)},
			{SessionID: "gone", LastActivity: at(100)},
			{SessionID: "unknown", LastActivity: at(100)},
		}))
		// Older times arrive late: they must not move anything backwards.
		mustNoErr(t, db.SaveActivity(ctx, []pos.Activity{
			{SessionID: "a", LastActivity: at(40)},
			{SessionID: "b", LastActivity: at(70)},
		}))
		mustNoErr(t, db.SaveActivity(ctx, nil))
		for id, want := range map[string]time.Time{"a": at(100), "b": at(70), "gone": at(0)} {
			s, err := db.Session(ctx, id)
			mustNoErr(t, err)
			if !s.LastActivity.Equal(want) {
				t.Errorf("%s LastActivity: got %v, want %v", id, s.LastActivity, want)
			}
		}
	})

	t.Run("RevokeIdempotent", func(t *testing.T) {
		db := MustOpenDB(t)
		mustNoErr(t, db.CreateSession(ctx, newSession("s", 0)))
		mustNoErr(t, db.RevokeSession(ctx, "s", at(10), protocol.ReasonIdle))
		mustNoErr(t, db.RevokeSession(ctx, "s", at(20), protocol.ReasonSignedOut))
		got, err := db.Session(ctx, "s")
		mustNoErr(t, err)
		if !got.Revoked || !got.RevokedAt.Equal(at(10)) || got.RevokedReason != protocol.ReasonIdle {
			t.Errorf("after revoking twice: got %+v, want revoked at t0+10ms for idle", got)
		}
		wantCode(t, db.RevokeSession(ctx, "nope", at(10), protocol.ReasonIdle), pos.ENOTFOUND)
	})

	t.Run("CreateRevoked", func(t *testing.T) {
		db := MustOpenDB(t)
		s := newSession("r", 0)
		s.Revoked, s.RevokedAt, s.RevokedReason = true, at(3), protocol.ReasonRevoked
		mustNoErr(t, db.CreateSession(ctx, s))
		got, err := db.Session(ctx, "r")
		mustNoErr(t, err)
		if !got.Revoked || !got.RevokedAt.Equal(at(3)) || got.RevokedReason != protocol.ReasonRevoked {
			t.Errorf("Session: got %+v, want %+v", got, s)
		}
	})

	t.Run("Purge", func(t *testing.T) {
		db := MustOpenDB(t)
		for _, id := range []string{"old1", "old2", "recent", "live"} {
			mustNoErr(t, db.CreateSession(ctx, newSession(id, 0)))
		}
		mustNoErr(t, db.RevokeSession(ctx, "old1", at(10), protocol.ReasonIdle))
		mustNoErr(t, db.RevokeSession(ctx, "old2", at(19), protocol.ReasonIdle))
		mustNoErr(t, db.RevokeSession(ctx, "recent", at(20), protocol.ReasonIdle))
		n, err := db.PurgeSessions(ctx, at(20))
		mustNoErr(t, err)
		if n != 2 {
			t.Errorf("PurgeSessions: got %d, want 2", n)
		}
		for id, want := range map[string]string{"old1": pos.ENOTFOUND, "old2": pos.ENOTFOUND, "recent": "", "live": ""} {
			_, err := db.Session(ctx, id)
			if got := pos.ErrorCode(err); got != want {
				t.Errorf("Session(%q) code: got %q, want %q", id, got, want)
			}
		}
		n, err = db.PurgeSessions(ctx, at(20))
		mustNoErr(t, err)
		if n != 0 {
			t.Errorf("second PurgeSessions: got %d, want 0", n)
		}
	})
}

// TestReopen is invariant 8: nothing is lost on restart.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idleguard.db")
	db, err := Open(ctx, path)
	mustNoErr(t, err)
	admin, clerk := seed(t, db)
	settings := pos.Settings{ExpirationSeconds: 60, UpdatedBy: "admin", UpdatedAt: at(1)}
	mustNoErr(t, db.SaveSettings(ctx, pos.DefaultDomain, settings,
		pos.SettingsChange{At: at(1), By: "admin", Old: pos.DefaultExpirationSeconds, New: 60}))
	mustNoErr(t, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: "live", UserID: admin.ID, Username: "admin", Created: at(0), LastActivity: at(0)}))
	mustNoErr(t, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: "ended", UserID: clerk.ID, Username: "clerk", Created: at(0), LastActivity: at(0)}))
	mustNoErr(t, db.SaveActivity(ctx, []pos.Activity{{SessionID: "live", LastActivity: at(12345)}}))
	mustNoErr(t, db.RevokeSession(ctx, "ended", at(99), protocol.ReasonSignedOut))
	mustNoErr(t, db.Close())

	db = mustOpenPath(t, path)
	users, err := db.Users(ctx, pos.DefaultDomain)
	mustNoErr(t, err)
	if want := []pos.User{admin, clerk}; !reflect.DeepEqual(users, want) {
		t.Errorf("Users: got %+v, want %+v", users, want)
	}
	groups, err := db.Groups(ctx, pos.DefaultDomain)
	mustNoErr(t, err)
	if len(groups) != 2 || len(groups[1].Permissions) != 2 {
		t.Errorf("Groups: got %+v, want cashiers and developers with 2 permissions", groups)
	}
	s, err := db.Settings(ctx, pos.DefaultDomain)
	mustNoErr(t, err)
	if s.ExpirationSeconds != 60 || s.UpdatedBy != "admin" || !s.UpdatedAt.Equal(at(1)) {
		t.Errorf("Settings: got %+v, want %+v", s, settings)
	}
	changes, err := db.SettingsChanges(ctx, pos.DefaultDomain, 10)
	mustNoErr(t, err)
	if len(changes) != 1 || changes[0].New != 60 {
		t.Errorf("SettingsChanges: got %+v, want one to 60", changes)
	}
	live, err := db.LiveSessions(ctx)
	mustNoErr(t, err)
	if len(live) != 1 || live[0].ID != "live" || !live[0].LastActivity.Equal(at(12345)) {
		t.Errorf("LiveSessions: got %+v, want live with last activity t0+12345ms", live)
	}
	ended, err := db.Session(ctx, "ended")
	mustNoErr(t, err)
	if !ended.Revoked || !ended.RevokedAt.Equal(at(99)) || ended.RevokedReason != protocol.ReasonSignedOut {
		t.Errorf("ended session: got %+v, want revoked at t0+99ms, signed_out", ended)
	}
}

// TestConcurrentWrites runs writers and readers together: none may see
// "database is locked". AddUser reads before it writes, the pattern that
// fails at once when two deferred transactions race for the write lock.
func TestConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: pos.DefaultDomain, Name: "g"}))
	const workers, rounds = 6, 40
	var wg sync.WaitGroup
	errs := make(chan error, 4*workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				id := fmt.Sprintf("w%d-%d", w, i)
				errs <- db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: id, UserID: int64(w), Username: "u", Created: at(0), LastActivity: at(0)})
				errs <- db.SaveActivity(ctx, []pos.Activity{
					{SessionID: id, LastActivity: at(int64(i + 1))},
					{SessionID: fmt.Sprintf("w%d-0", w), LastActivity: at(int64(i + 1))},
				})
				_, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: id, Group: "g"})
				errs <- err
				_, err = db.LiveSessions(ctx)
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent use: got %v, want no error", err)
		}
	}
	live, err := db.LiveSessions(ctx)
	mustNoErr(t, err)
	if got, want := len(live), workers*rounds; got != want {
		t.Errorf("LiveSessions: got %d, want %d", got, want)
	}
	users, err := db.Users(ctx, pos.DefaultDomain)
	mustNoErr(t, err)
	if got, want := len(users), workers*rounds; got != want {
		t.Errorf("Users: got %d, want %d", got, want)
	}
	for w := range workers {
		s, err := db.Session(ctx, fmt.Sprintf("w%d-0", w))
		mustNoErr(t, err)
		if !s.LastActivity.Equal(at(rounds)) {
			t.Errorf("w%d-0 LastActivity: got %v, want %v", w, s.LastActivity, at(rounds))
		}
	}
}

func TestErrorsWrapped(t *testing.T) {
	db := MustOpenDB(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := db.Users(cancelled, pos.DefaultDomain)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Users with a cancelled context: got %v, want it to wrap context.Canceled", err)
	}
	if got := pos.ErrorCode(err); got != pos.EINTERNAL {
		t.Errorf("code: got %q, want %q", got, pos.EINTERNAL)
	}
}

func BenchmarkSaveActivity(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	batch := make([]pos.Activity, 1000)
	for i := range batch {
		id := fmt.Sprintf("session-%04d", i)
		mustNoErr(b, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: id, UserID: 1, Username: "u", Created: t0, LastActivity: t0}))
		batch[i].SessionID = id
	}
	var n int64
	for b.Loop() {
		n++
		for i := range batch {
			batch[i].LastActivity = at(n)
		}
		if err := db.SaveActivity(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*int64(len(batch))), "ns/session")
}
