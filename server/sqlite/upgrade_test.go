package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// testdata/v3.db is a data directory's file as the last release before
// domains (schema version 3) left it: made by that program's own server
// and CLI, not by this package, so that the upgrade is tested on what is
// out there. It holds the demo users admin, viewer and cashier, carol
// (added with the CLI to a group it added, auditors), dave's id 5 (added
// and deleted, so the id sequence is past every id left), an Expiration
// Time saved twice, live sessions of admin and cashier, and viewer's,
// signed out.
const v3File = "testdata/v3.db"

// v3State is what a version-3 file holds, read with version 3's schema.
type v3State struct {
	users       []pos.User // without permissions
	groups      []pos.Group
	userSeq     int64
	settings    pos.Settings
	changes     []pos.SettingsChange // oldest first
	sessions    []pos.Session
	sessionEnds []pos.SessionEnd
}

// mustCopyV3 copies testdata/v3.db into a temp dir and returns its path.
func mustCopyV3(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(v3File)
	mustNoErr(tb, err)
	path := filepath.Join(tb.TempDir(), FileName)
	mustNoErr(tb, os.WriteFile(path, b, 0o600))
	return path
}

// mustReadV3 reads a version-3 file with plain SQL, without migrating it.
func mustReadV3(tb testing.TB, path string) v3State {
	tb.Helper()
	ctx := context.Background()
	r, err := openPool(ctx, path, "&_pragma=query_only(1)", 1)
	mustNoErr(tb, err)
	defer r.Close()
	var version int
	mustNoErr(tb, r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version))
	if version != 3 {
		tb.Fatalf("%s: user_version %d, want 3", v3File, version)
	}
	all := func(query string, scan func(*sql.Rows) error) {
		tb.Helper()
		rows, err := r.QueryContext(ctx, query)
		mustNoErr(tb, err)
		defer rows.Close()
		for rows.Next() {
			mustNoErr(tb, scan(rows))
		}
		mustNoErr(tb, rows.Err())
	}
	var st v3State
	all(`SELECT id, name, group_name, password_hash FROM users ORDER BY name`, func(rows *sql.Rows) error {
		u := pos.User{Domain: pos.DefaultDomain}
		st.users = append(st.users, u)
		last := &st.users[len(st.users)-1]
		return rows.Scan(&last.ID, &last.Name, &last.Group, &last.PasswordHash)
	})
	all(`SELECT g.name, gp.permission FROM groups g LEFT JOIN group_permissions gp ON gp.group_name = g.name
		ORDER BY g.name, gp.permission`, func(rows *sql.Rows) error {
		var name string
		var perm sql.NullString
		if err := rows.Scan(&name, &perm); err != nil {
			return err
		}
		if len(st.groups) == 0 || st.groups[len(st.groups)-1].Name != name {
			st.groups = append(st.groups, pos.Group{Domain: pos.DefaultDomain, Name: name})
		}
		if perm.Valid {
			g := &st.groups[len(st.groups)-1]
			g.Permissions = append(g.Permissions, pos.Permission(perm.String))
		}
		return nil
	})
	mustNoErr(tb, r.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'users'`).Scan(&st.userSeq))
	var updated int64
	mustNoErr(tb, r.QueryRowContext(ctx, `SELECT expiration_seconds, updated_by, updated_at FROM settings WHERE id = 1`).
		Scan(&st.settings.ExpirationSeconds, &st.settings.UpdatedBy, &updated))
	st.settings.UpdatedAt = fromMillis(updated)
	all(`SELECT at, by, old, new FROM settings_changes ORDER BY id`, func(rows *sql.Rows) error {
		var c pos.SettingsChange
		var at int64
		err := rows.Scan(&at, &c.By, &c.Old, &c.New)
		c.At = fromMillis(at)
		st.changes = append(st.changes, c)
		return err
	})
	all(`SELECT id, user_id, username, created, last_activity, revoked, revoked_at, revoked_reason FROM sessions ORDER BY id`,
		func(rows *sql.Rows) error {
			s := pos.Session{Domain: pos.DefaultDomain}
			var created, last int64
			var revokedAt sql.NullInt64
			var reason string
			err := rows.Scan(&s.ID, &s.UserID, &s.Username, &created, &last, &s.Revoked, &revokedAt, &reason)
			s.Created, s.LastActivity, s.RevokedReason = fromMillis(created), fromMillis(last), protocol.ParseReason(reason)
			if revokedAt.Valid {
				s.RevokedAt = fromMillis(revokedAt.Int64)
			}
			st.sessions = append(st.sessions, s)
			return err
		})
	all(`SELECT seq, session_id, reason FROM session_ends ORDER BY seq`, func(rows *sql.Rows) error {
		var e pos.SessionEnd
		var reason string
		err := rows.Scan(&e.Seq, &e.SessionID, &reason)
		e.Reason = protocol.ParseReason(reason)
		st.sessionEnds = append(st.sessionEnds, e)
		return err
	})
	return st
}

// TestUpgradeFromV3 opens the last release's file with this code: every
// user, group, setting, change and session is there, in the default
// domain, with the ids it had, and no id comes back.
func TestUpgradeFromV3(t *testing.T) {
	ctx := context.Background()
	path := mustCopyV3(t)
	old := mustReadV3(t, path)
	// What the file is known to hold, so that an empty read cannot pass.
	if len(old.users) != 4 || len(old.groups) != 4 || len(old.changes) != 2 || len(old.sessions) != 3 ||
		len(old.sessionEnds) != 1 || old.userSeq != 5 || old.settings.ExpirationSeconds != 7200 {
		t.Fatalf("%s: got %d users, %d groups, %d changes, %d sessions, %d session ends, user seq %d, %d s; "+
			"want 4, 4, 2, 3, 1, 5 and 7200 s", v3File, len(old.users), len(old.groups), len(old.changes),
			len(old.sessions), len(old.sessionEnds), old.userSeq, old.settings.ExpirationSeconds)
	}
	before := time.Now()
	db := mustOpenPath(t, path)

	t.Run("Domains", func(t *testing.T) {
		domains, err := db.Domains(ctx)
		mustNoErr(t, err)
		// Created is when the upgrade made the domain: a whole second,
		// from SQLite's clock.
		if len(domains) != 1 || domains[0].Name != pos.DefaultDomain ||
			domains[0].Created.Before(before.Truncate(time.Second)) || domains[0].Created.After(time.Now()) {
			t.Errorf("Domains: got %+v, want default, created by the upgrade (after %v)", domains, before)
		}
		if got, err := db.DomainChanges(ctx, 0, 1000); err != nil || len(got) != 0 {
			t.Errorf("domain log: got %+v, %v, want empty", got, err)
		}
	})

	t.Run("Users", func(t *testing.T) {
		users, err := db.Users(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		groupPerms := map[string][]pos.Permission{}
		for _, g := range old.groups {
			groupPerms[g.Name] = g.Permissions
		}
		want := slices.Clone(old.users)
		for i := range want {
			want[i].Permissions = groupPerms[want[i].Group]
		}
		if !reflect.DeepEqual(users, want) {
			t.Errorf("Users: got %+v, want %+v", users, want)
		}
		for _, u := range want {
			if got, err := db.UserByID(ctx, u.ID); err != nil || !reflect.DeepEqual(got, u) {
				t.Errorf("UserByID(%d): got %+v, %v, want %+v", u.ID, got, err, u)
			}
			if got, err := db.UserByName(ctx, pos.DefaultDomain, u.Name); err != nil || !reflect.DeepEqual(got, u) {
				t.Errorf("UserByName(%s): got %+v, %v, want %+v", u.Name, got, err, u)
			}
		}
	})

	t.Run("Groups", func(t *testing.T) {
		groups, err := db.Groups(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if !reflect.DeepEqual(groups, old.groups) {
			t.Errorf("Groups: got %+v, want %+v", groups, old.groups)
		}
	})

	t.Run("Settings", func(t *testing.T) {
		s, err := db.Settings(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if s.ExpirationSeconds != old.settings.ExpirationSeconds || s.UpdatedBy != old.settings.UpdatedBy ||
			!s.UpdatedAt.Equal(old.settings.UpdatedAt) {
			t.Errorf("Settings: got %+v, want %+v", s, old.settings)
		}
		changes, err := db.SettingsChanges(ctx, pos.DefaultDomain, 10)
		mustNoErr(t, err)
		want := slices.Clone(old.changes)
		slices.Reverse(want)
		if len(changes) != len(want) {
			t.Fatalf("SettingsChanges: got %+v, want %+v", changes, want)
		}
		for i := range want {
			if g, w := changes[i], want[i]; !g.At.Equal(w.At) || g.By != w.By || g.Old != w.Old || g.New != w.New {
				t.Errorf("SettingsChanges[%d]: got %+v, want %+v", i, g, w)
			}
		}
	})

	t.Run("Sessions", func(t *testing.T) {
		var wantLive []string
		for _, w := range old.sessions {
			got, err := db.Session(ctx, w.ID)
			mustNoErr(t, err)
			if got.Domain != pos.DefaultDomain || got.UserID != w.UserID || got.Username != w.Username ||
				!got.Created.Equal(w.Created) || !got.LastActivity.Equal(w.LastActivity) || got.Revoked != w.Revoked ||
				!got.RevokedAt.Equal(w.RevokedAt) || got.RevokedReason != w.RevokedReason {
				t.Errorf("Session(%s): got %+v, want %+v", w.ID, got, w)
			}
			if !w.Revoked {
				wantLive = append(wantLive, w.ID)
			}
		}
		live, err := db.LiveSessions(ctx)
		mustNoErr(t, err)
		var gotLive []string
		for _, s := range live {
			if s.Domain != pos.DefaultDomain {
				t.Errorf("live session %s: got domain %q, want default", s.ID, s.Domain)
			}
			gotLive = append(gotLive, s.ID)
		}
		slices.Sort(gotLive)
		if len(wantLive) != 2 || !reflect.DeepEqual(gotLive, wantLive) {
			t.Errorf("LiveSessions: got %v, want %v (two)", gotLive, wantLive)
		}
		ends, err := db.SessionEnds(ctx, 0, 1000)
		mustNoErr(t, err)
		if !reflect.DeepEqual(ends, old.sessionEnds) {
			t.Errorf("SessionEnds: got %+v, want %+v", ends, old.sessionEnds)
		}
	})

	// Each live session still belongs to its user, now of the same
	// domain: the start-up sweep ends none.
	t.Run("NoOrphans", func(t *testing.T) {
		n, err := db.RevokeOrphanSessions(ctx, time.Now())
		mustNoErr(t, err)
		if n != 0 {
			t.Errorf("RevokeOrphanSessions: got %d, want 0", n)
		}
	})

	t.Run("Schema", func(t *testing.T) { checkSchema(t, db) })

	// Last: it adds a user. dave's id 5 was deleted before the upgrade;
	// it must not come back, nor any other.
	t.Run("NextIDIsFresh", func(t *testing.T) {
		u, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "erin", Group: "cashiers"})
		mustNoErr(t, err)
		if u.ID <= old.userSeq {
			t.Errorf("new user's id: got %d, want above %d, the last handed out", u.ID, old.userSeq)
		}
		mustNoErr(t, db.AddDomain(ctx, "acme", t0))
		mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: "acme", Name: "cashiers"}))
		v, err := db.AddUser(ctx, pos.User{Domain: "acme", Name: "erin", Group: "cashiers"})
		mustNoErr(t, err)
		if v.ID <= u.ID {
			t.Errorf("a user in another domain: got id %d, want above %d", v.ID, u.ID)
		}
	})
}

// TestMigratedSchema checks the schema a new file and an upgraded one end
// with: ALTER TABLE RENAME rewrites the references to a renamed table, and
// this is where it shows whether they name what they should.
func TestMigratedSchema(t *testing.T) {
	t.Run("New", func(t *testing.T) { checkSchema(t, MustOpenDB(t)) })
	t.Run("FromV3", func(t *testing.T) { checkSchema(t, mustOpenPath(t, mustCopyV3(t))) })
	t.Run("FromV1", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), FileName)
		mustNoErr(t, mustOpenVersion1(t, path).Close())
		checkSchema(t, mustOpenPath(t, path))
	})
	// An upgraded file's schema is a new file's, table for table.
	t.Run("SameAsNew", func(t *testing.T) {
		got := schemaSQL(t, mustOpenPath(t, mustCopyV3(t)))
		want := schemaSQL(t, MustOpenDB(t))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("upgraded schema:\n%v\nwant a new file's:\n%v", got, want)
		}
	})
}

// schemaSQL is every table's and index's definition, by name.
func schemaSQL(tb testing.TB, db *DB) map[string]string {
	tb.Helper()
	rows, err := db.r.QueryContext(context.Background(),
		`SELECT name, coalesce(sql, '') FROM sqlite_schema WHERE type IN ('table', 'index')`)
	mustNoErr(tb, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, ddl string
		mustNoErr(tb, rows.Scan(&name, &ddl))
		out[name] = ddl
	}
	mustNoErr(tb, rows.Err())
	return out
}

// checkSchema checks the foreign keys hold and reference the final
// tables, and that nothing of the rebuild is left.
func checkSchema(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	rows, err := db.r.QueryContext(ctx, `PRAGMA foreign_key_check`)
	mustNoErr(t, err)
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		mustNoErr(t, rows.Scan(&table, &rowid, &parent, &fk))
		t.Errorf("foreign_key_check: row %v of %s breaks its key to %s", rowid, table, parent)
	}
	mustNoErr(t, rows.Err())
	rows.Close()
	var ok string
	mustNoErr(t, db.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok))
	if ok != "ok" {
		t.Errorf("integrity_check: got %q, want ok", ok)
	}

	// table: "from columns -> parent (to columns) on delete"
	want := map[string][]string{
		"domains":           nil,
		"groups":            {"domain -> domains (name) NO ACTION"},
		"group_permissions": {"domain,group_name -> groups (domain,name) CASCADE"},
		"users":             {"domain,group_name -> groups (domain,name) NO ACTION"},
		"settings":          {"domain -> domains (name) NO ACTION"},
		"settings_changes":  {"domain -> domains (name) NO ACTION"},
		"sessions":          nil,
		"session_ends":      nil,
		"domain_changes":    nil,
	}
	for table, wantKeys := range want {
		// Each key's columns come one row each, in order, under its id.
		rows, err := db.r.QueryContext(ctx, `SELECT id, "table", "from", "to", on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq`, table)
		mustNoErr(t, err)
		type key struct{ parent, from, to, onDelete string }
		var keys []key
		var last = -1
		for rows.Next() {
			var id int
			var parent, from, to, onDelete string
			mustNoErr(t, rows.Scan(&id, &parent, &from, &to, &onDelete))
			if id != last {
				keys = append(keys, key{parent: parent, onDelete: onDelete})
				last = id
			}
			k := &keys[len(keys)-1]
			k.from = strings.TrimPrefix(k.from+","+from, ",")
			k.to = strings.TrimPrefix(k.to+","+to, ",")
		}
		mustNoErr(t, rows.Err())
		rows.Close()
		var got []string
		for _, k := range keys {
			got = append(got, k.from+" -> "+k.parent+" ("+k.to+") "+k.onDelete)
		}
		if !reflect.DeepEqual(got, wantKeys) {
			t.Errorf("foreign keys of %s: got %q, want %q", table, got, wantKeys)
		}
	}

	schema := schemaSQL(t, db)
	var tables []string
	for name, ddl := range schema {
		if strings.Contains(name, "_v4") || strings.Contains(ddl, "_v4") {
			t.Errorf("%s: got %q, want nothing of the rebuild's tables", name, ddl)
		}
		if !strings.HasPrefix(name, "sqlite_") && strings.HasPrefix(ddl, "CREATE TABLE") {
			tables = append(tables, name)
		}
	}
	slices.Sort(tables)
	var wantTables []string
	for table := range want {
		wantTables = append(wantTables, table)
	}
	slices.Sort(wantTables)
	if !reflect.DeepEqual(tables, wantTables) {
		t.Errorf("tables: got %v, want %v", tables, wantTables)
	}
	for _, table := range tables {
		if ddl := schema[table]; !strings.Contains(ddl, "STRICT") {
			t.Errorf("%s: got %s, want STRICT", table, ddl)
		}
	}
	if !strings.Contains(schema["users"], "AUTOINCREMENT") {
		t.Errorf("users: got %s, want AUTOINCREMENT", schema["users"])
	}
	var seqNames []string
	rows, err = db.r.QueryContext(ctx, `SELECT name FROM sqlite_sequence ORDER BY name`)
	mustNoErr(t, err)
	defer rows.Close()
	for rows.Next() {
		var name string
		mustNoErr(t, rows.Scan(&name))
		seqNames = append(seqNames, name)
	}
	mustNoErr(t, rows.Err())
	for _, name := range seqNames {
		if !slices.Contains([]string{"users", "session_ends", "domain_changes"}, name) {
			t.Errorf("sqlite_sequence: got a row for %q, want only the AUTOINCREMENT tables'", name)
		}
	}
	if !slices.Contains(seqNames, "users") {
		t.Errorf("sqlite_sequence: got %v, want users' sequence kept", seqNames)
	}
}
