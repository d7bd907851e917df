package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// mustOpenVersion1 makes a database file as the first release did, with
// migration 1 alone, and returns its writer pool for the test to fill in.
func mustOpenVersion1(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	ctx := context.Background()
	w, err := openPool(ctx, path, "", 1)
	mustNoErr(tb, err)
	tb.Cleanup(func() { w.Close() })
	_, err = w.ExecContext(ctx, migrations[0])
	mustNoErr(tb, err)
	_, err = w.ExecContext(ctx, "PRAGMA user_version = 1")
	mustNoErr(tb, err)
	return w
}

// TestUpgradeKeepsUserIDsUnique is invariant 5's "a user's id is never
// reused" on a database the first release made: there, deleting the newest
// user let the next one created take its id, and with it the sessions
// still naming that id.
func TestUpgradeKeepsUserIDsUnique(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idleguard.db")
	old := mustOpenVersion1(t, path)
	mustExec := func(query string, args ...any) {
		t.Helper()
		_, err := old.ExecContext(ctx, query, args...)
		mustNoErr(t, err)
	}
	// What the first release's AddUser, DeleteUser and CreateSession wrote.
	mustExec(`INSERT INTO groups (name) VALUES ('developers'), ('cashiers')`)
	mustExec(`INSERT INTO group_permissions (group_name, permission) VALUES ('developers', 'developer.view')`)
	for _, u := range [][2]string{{"admin", "developers"}, {"clerk", "cashiers"}, {"bob", "cashiers"}} {
		mustExec(`INSERT INTO users (name, group_name, password_hash) VALUES (?, ?, ?)`, u[0], u[1], []byte("hash-"+u[0]))
	}
	mustExec(`INSERT INTO sessions (id, user_id, username, created, last_activity) VALUES ('bob-session', 3, 'bob', ?, ?)`,
		millis(at(0)), millis(at(0)))
	mustExec(`INSERT INTO sessions (id, user_id, username, created, last_activity) VALUES ('clerk-session', 2, 'clerk', ?, ?)`,
		millis(at(0)), millis(at(0)))
	mustExec(`DELETE FROM users WHERE name = 'bob'`) // the newest user, id 3; its session stays
	mustNoErr(t, old.Close())

	db := mustOpenPath(t, path)

	t.Run("NothingLost", func(t *testing.T) {
		users, err := db.Users(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		want := []pos.User{
			{ID: 1, Domain: pos.DefaultDomain, Name: "admin", Group: "developers", PasswordHash: []byte("hash-admin"), Permissions: []pos.Permission{pos.DeveloperView}},
			{ID: 2, Domain: pos.DefaultDomain, Name: "clerk", Group: "cashiers", PasswordHash: []byte("hash-clerk")},
		}
		if !reflect.DeepEqual(users, want) {
			t.Errorf("Users: got %+v, want %+v", users, want)
		}
		live, err := db.LiveSessions(ctx)
		mustNoErr(t, err)
		if len(live) != 2 {
			t.Errorf("LiveSessions: got %+v, want bob-session and clerk-session", live)
		}
		var version int
		mustNoErr(t, db.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version))
		if version != len(migrations) {
			t.Errorf("user_version: got %d, want %d", version, len(migrations))
		}
	})

	t.Run("TableRebuiltWithAutoincrementAndForeignKey", func(t *testing.T) {
		var ddl string
		mustNoErr(t, db.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE name = 'users'`).Scan(&ddl))
		if !strings.Contains(ddl, "AUTOINCREMENT") || !strings.Contains(ddl, "STRICT") {
			t.Errorf("users: got %s, want AUTOINCREMENT and STRICT", ddl)
		}
		// Every other column valid, so that only the key can refuse it;
		// cashiers exists, but in the default domain only.
		for _, row := range [][2]string{{"default", "ghosts"}, {"acme", "cashiers"}} {
			_, err := db.w.ExecContext(ctx, `INSERT INTO users (domain, name, group_name, password_hash) VALUES (?, 'x', ?, x'')`, row[0], row[1])
			if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
				t.Errorf("insert of a user in missing group %s/%s: got %v, want the foreign key to refuse it", row[0], row[1], err)
			}
		}
	})

	t.Run("NextIDIsFresh", func(t *testing.T) {
		carol, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "carol", Group: "cashiers"})
		mustNoErr(t, err)
		// 3 is bob's, whom a session still names, though he is gone.
		if carol.ID != 4 {
			t.Errorf("carol's ID: got %d, want 4", carol.ID)
		}
		_, err = db.DeleteUser(ctx, pos.DefaultDomain, "carol", at(1))
		mustNoErr(t, err)
		dave, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "dave", Group: "cashiers"})
		mustNoErr(t, err)
		if dave.ID != 5 {
			t.Errorf("dave's ID after carol (4, newest) was deleted: got %d, want 5", dave.ID)
		}
	})

	t.Run("OrphanEndedAtStart", func(t *testing.T) {
		n, err := db.RevokeOrphanSessions(ctx, at(2))
		mustNoErr(t, err)
		if n != 1 {
			t.Errorf("RevokeOrphanSessions: got %d, want 1 (bob-session)", n)
		}
		s, err := db.Session(ctx, "bob-session")
		mustNoErr(t, err)
		if !s.Revoked || s.RevokedReason != protocol.ReasonRevoked {
			t.Errorf("bob-session: got %+v, want revoked", s)
		}
	})
}

// TestUpgradeOfEmptyVersion1 covers a first-release file with no users
// and no sessions: the sequence starts at 0 and the first id is 1.
func TestUpgradeOfEmptyVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idleguard.db")
	old := mustOpenVersion1(t, path)
	mustNoErr(t, old.Close())
	db := mustOpenPath(t, path)
	mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: pos.DefaultDomain, Name: "g"}))
	u, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "first", Group: "g"})
	mustNoErr(t, err)
	if u.ID != 1 {
		t.Errorf("first ID: got %d, want 1", u.ID)
	}
}
