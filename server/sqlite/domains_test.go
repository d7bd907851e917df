package sqlite

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// mustAddDomain adds a domain at t0.
func mustAddDomain(tb testing.TB, db *DB, name string) {
	tb.Helper()
	mustNoErr(tb, db.AddDomain(context.Background(), name, t0))
}

// domainNames lists the domains by name.
func domainNames(tb testing.TB, db *DB) []string {
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
func mustDomainChanges(tb testing.TB, db *DB, after int64) []string {
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

func TestDomains(t *testing.T) {
	ctx := context.Background()

	t.Run("DefaultExists", func(t *testing.T) {
		db := MustOpenDB(t)
		domains, err := db.Domains(ctx)
		mustNoErr(t, err)
		if len(domains) != 1 || domains[0].Name != pos.DefaultDomain || domains[0].Created.IsZero() {
			t.Errorf("Domains of a new file: got %+v, want default with its creation time", domains)
		}
		if got := mustDomainChanges(t, db, 0); len(got) != 0 {
			t.Errorf("domain log of a new file: got %v, want empty", got)
		}
	})

	t.Run("AddAndList", func(t *testing.T) {
		db := MustOpenDB(t)
		mustNoErr(t, db.AddDomain(ctx, "zeta", at(2)))
		mustNoErr(t, db.AddDomain(ctx, "acme", at(1)))
		domains, err := db.Domains(ctx)
		mustNoErr(t, err)
		if got, want := domainNames(t, db), []string{"acme", "default", "zeta"}; !reflect.DeepEqual(got, want) {
			t.Errorf("Domains: got %v, want %v", got, want)
		}
		if !domains[0].Created.Equal(at(1)) || !domains[2].Created.Equal(at(2)) {
			t.Errorf("Created: got %v and %v, want t0+1ms and t0+2ms", domains[0].Created, domains[2].Created)
		}
		// A new domain is empty, not unknown.
		users, err := db.Users(ctx, "acme")
		mustNoErr(t, err)
		groups, err := db.Groups(ctx, "acme")
		mustNoErr(t, err)
		if len(users) != 0 || len(groups) != 0 {
			t.Errorf("new domain: got users %+v, groups %+v, want none", users, groups)
		}
		s, err := db.Settings(ctx, "acme")
		mustNoErr(t, err)
		if s != pos.DefaultSettings() {
			t.Errorf("new domain's Settings: got %+v, want the default", s)
		}
		if got, want := mustDomainChanges(t, db, 0), []string{"zeta:added", "acme:added"}; !reflect.DeepEqual(got, want) {
			t.Errorf("domain log: got %v, want %v", got, want)
		}
	})

	t.Run("AddTwice", func(t *testing.T) {
		db := MustOpenDB(t)
		mustAddDomain(t, db, "acme")
		for _, name := range []string{"acme", pos.DefaultDomain} {
			err := db.AddDomain(ctx, name, at(5))
			wantCode(t, err, pos.ECONFLICT)
			if got, want := pos.ErrorMessage(err), `domain "`+name+`" already exists`; got != want {
				t.Errorf("message: got %q, want %q", got, want)
			}
		}
		domains, err := db.Domains(ctx)
		mustNoErr(t, err)
		if !domains[0].Created.Equal(t0) {
			t.Errorf("acme's Created after a second add: got %v, want the first's %v", domains[0].Created, t0)
		}
		if got, want := mustDomainChanges(t, db, 0), []string{"acme:added"}; !reflect.DeepEqual(got, want) {
			t.Errorf("domain log: got %v, want %v", got, want)
		}
	})

	// Invariant 7: a bad name is an error naming the field, and nothing
	// is stored.
	t.Run("BadName", func(t *testing.T) {
		db := MustOpenDB(t)
		for _, bad := range []string{"", "Acme", "-acme", "acme-", "a_b", "a.b", strings.Repeat("a", pos.MaxDomainLen+1)} {
			err := db.AddDomain(ctx, bad, t0)
			var e *pos.Error
			if !errors.As(err, &e) || e.Code != pos.EINVALID || e.Field != "domain" {
				t.Errorf("AddDomain(%q): got %v, want EINVALID naming domain", bad, err)
			}
		}
		if got, want := domainNames(t, db), []string{pos.DefaultDomain}; !reflect.DeepEqual(got, want) {
			t.Errorf("Domains after bad names: got %v, want %v", got, want)
		}
		if got := mustDomainChanges(t, db, 0); len(got) != 0 {
			t.Errorf("domain log after bad names: got %v, want empty", got)
		}
	})

	t.Run("RemoveRefusedWithUsers", func(t *testing.T) {
		db := MustOpenDB(t)
		mustAddDomain(t, db, "acme")
		admin, _ := seedDomain(t, db, "acme")
		mustCreateSessions(t, db, admin, "a1")
		mustNoErr(t, db.SaveSettings(ctx, "acme", pos.Settings{ExpirationSeconds: 60, UpdatedBy: "admin", UpdatedAt: at(1)},
			pos.SettingsChange{At: at(1), By: "admin", Old: pos.DefaultExpirationSeconds, New: 60}))
		log := mustDomainChanges(t, db, 0)

		ended, err := db.RemoveDomain(ctx, "acme", false, at(9))
		wantCode(t, err, pos.ECONFLICT)
		if got, want := pos.ErrorMessage(err), `domain "acme" has 2 users; remove them first or use -force`; got != want {
			t.Errorf("message: got %q, want %q", got, want)
		}
		if ended != nil {
			t.Errorf("ended: got %v, want nil", ended)
		}
		if got, want := domainNames(t, db), []string{"acme", pos.DefaultDomain}; !reflect.DeepEqual(got, want) {
			t.Errorf("Domains: got %v, want %v", got, want)
		}
		if users, err := db.Users(ctx, "acme"); err != nil || len(users) != 2 {
			t.Errorf("acme's users: got %d, %v, want 2", len(users), err)
		}
		if s, err := db.Settings(ctx, "acme"); err != nil || s.ExpirationSeconds != 60 {
			t.Errorf("acme's Settings: got %+v, %v, want 60 s", s, err)
		}
		wantLive(t, db, "a1")
		if ends := mustSessionEnds(t, db, 0); len(ends) != 0 {
			t.Errorf("session end log: got %+v, want empty", ends)
		}
		if got := mustDomainChanges(t, db, 0); !reflect.DeepEqual(got, log) {
			t.Errorf("domain log: got %v, want %v", got, log)
		}

		// One user left: the message counts it as one.
		_, err = db.DeleteUser(ctx, "acme", "clerk", at(10))
		mustNoErr(t, err)
		_, err = db.RemoveDomain(ctx, "acme", false, at(11))
		if got, want := pos.ErrorMessage(err), `domain "acme" has 1 user; remove them first or use -force`; got != want {
			t.Errorf("message: got %q, want %q", got, want)
		}
	})

	t.Run("RemoveForced", func(t *testing.T) {
		db := MustOpenDB(t)
		mustAddDomain(t, db, "acme")
		admin, clerk := seedDomain(t, db, "acme")
		keep, _ := seed(t, db) // the same names in default: untouched
		mustCreateSessions(t, db, admin, "a2", "a1")
		mustCreateSessions(t, db, clerk, "c1", "c-ended")
		mustCreateSessions(t, db, keep, "default-live")
		mustNoErr(t, db.RevokeSession(ctx, "c-ended", at(3), protocol.ReasonSignedOut))
		mustNoErr(t, db.SaveSettings(ctx, "acme", pos.Settings{ExpirationSeconds: 60, UpdatedBy: "admin", UpdatedAt: at(1)},
			pos.SettingsChange{At: at(1), By: "admin", Old: pos.DefaultExpirationSeconds, New: 60}))
		endsBefore := mustSessionEnds(t, db, 0)

		ended, err := db.RemoveDomain(ctx, "acme", true, at(20))
		mustNoErr(t, err)
		if want := []string{"a1", "a2", "c1"}; !reflect.DeepEqual(ended, want) {
			t.Errorf("RemoveDomain ended: got %v, want %v", ended, want)
		}
		for _, id := range ended {
			wantEnded(t, db, id, 20, protocol.ReasonRevoked)
		}
		wantEnded(t, db, "c-ended", 3, protocol.ReasonSignedOut)
		wantLive(t, db, "default-live")
		if got, want := endIDs(mustSessionEnds(t, db, endsBefore[len(endsBefore)-1].Seq)),
			[]string{"a1:revoked", "a2:revoked", "c1:revoked"}; !reflect.DeepEqual(got, want) {
			t.Errorf("session end log: got %v, want %v", got, want)
		}
		if got, want := mustDomainChanges(t, db, 0), []string{"acme:added", "acme:removed"}; !reflect.DeepEqual(got, want) {
			t.Errorf("domain log: got %v, want %v", got, want)
		}
		if got, want := domainNames(t, db), []string{pos.DefaultDomain}; !reflect.DeepEqual(got, want) {
			t.Errorf("Domains: got %v, want %v", got, want)
		}
		_, err = db.UserByID(ctx, admin.ID)
		wantCode(t, err, pos.ENOTFOUND)
		for _, table := range []string{"users", "groups", "group_permissions", "settings", "settings_changes"} {
			if n := mustCount(t, db, `SELECT count(*) FROM `+table+` WHERE domain = 'acme'`); n != 0 {
				t.Errorf("%s rows of acme: got %d, want 0", table, n)
			}
		}
		if users, err := db.Users(ctx, pos.DefaultDomain); err != nil || len(users) != 2 {
			t.Errorf("default's users: got %+v, %v, want admin and clerk", users, err)
		}
		// The session rows stay until the purge, with their domain.
		if s, err := db.Session(ctx, "a1"); err != nil || s.Domain != "acme" {
			t.Errorf("Session(a1): got %+v, %v, want it kept, of acme", s, err)
		}

		// A domain of the same name added again starts empty, and its
		// first user's id is none of the old ones.
		mustAddDomain(t, db, "acme")
		if users, err := db.Users(ctx, "acme"); err != nil || len(users) != 0 {
			t.Errorf("acme added again: got users %+v, %v, want none", users, err)
		}
		if s, err := db.Settings(ctx, "acme"); err != nil || s != pos.DefaultSettings() {
			t.Errorf("acme added again: got Settings %+v, %v, want the default", s, err)
		}
		again, _ := seedDomain(t, db, "acme")
		if again.ID <= keep.ID+1 {
			t.Errorf("new admin's id: got %d, want above every earlier one (%d)", again.ID, keep.ID+1)
		}
	})

	t.Run("RemoveWithoutUsers", func(t *testing.T) {
		db := MustOpenDB(t)
		mustAddDomain(t, db, "acme")
		mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: "acme", Name: "g", Permissions: []pos.Permission{pos.DeveloperView}}))
		mustNoErr(t, db.SaveSettings(ctx, "acme", pos.Settings{ExpirationSeconds: 60}, pos.SettingsChange{New: 60}))
		ended, err := db.RemoveDomain(ctx, "acme", false, at(1))
		mustNoErr(t, err)
		if len(ended) != 0 {
			t.Errorf("ended: got %v, want none", ended)
		}
		_, err = db.Groups(ctx, "acme")
		wantCode(t, err, pos.ENOTFOUND)
		if n := mustCount(t, db, `SELECT count(*) FROM group_permissions`); n != 0 {
			t.Errorf("group_permissions rows: got %d, want 0", n)
		}
	})

	// The default domain is a domain like the others; a server with no
	// domain suffix then serves nothing until it is added again.
	t.Run("RemoveDefault", func(t *testing.T) {
		db := MustOpenDB(t)
		seed(t, db)
		_, err := db.RemoveDomain(ctx, pos.DefaultDomain, true, at(1))
		mustNoErr(t, err)
		if got := domainNames(t, db); len(got) != 0 {
			t.Errorf("Domains: got %v, want none", got)
		}
		mustNoErr(t, db.AddDomain(ctx, pos.DefaultDomain, at(2)))
		if got, want := mustDomainChanges(t, db, 0), []string{"default:removed", "default:added"}; !reflect.DeepEqual(got, want) {
			t.Errorf("domain log: got %v, want %v", got, want)
		}
	})

	t.Run("RemoveUnknown", func(t *testing.T) {
		db := MustOpenDB(t)
		ended, err := db.RemoveDomain(ctx, "nowhere", true, at(1))
		wantCode(t, err, pos.ENOTFOUND)
		if ended != nil {
			t.Errorf("ended: got %v, want nil", ended)
		}
		if got := mustDomainChanges(t, db, 0); len(got) != 0 {
			t.Errorf("domain log: got %v, want empty", got)
		}
	})
}

func TestDomainLog(t *testing.T) {
	ctx := context.Background()

	t.Run("Paging", func(t *testing.T) {
		db := MustOpenDB(t)
		names := []string{"d1", "d2", "d3", "d4", "d5"}
		for _, n := range names {
			mustAddDomain(t, db, n)
		}
		last, err := db.LastDomainChange(ctx)
		mustNoErr(t, err)
		var got []string
		var after, seq int64
		for {
			page, err := db.DomainChanges(ctx, after, 2)
			mustNoErr(t, err)
			if len(page) > 2 {
				t.Fatalf("DomainChanges(limit 2): got %d entries", len(page))
			}
			if len(page) == 0 {
				break
			}
			for _, c := range page {
				if c.Seq <= seq {
					t.Errorf("seqs: got %d after %d, want increasing", c.Seq, seq)
				}
				seq = c.Seq
				got = append(got, c.Domain)
			}
			after = page[len(page)-1].Seq
		}
		if !reflect.DeepEqual(got, names) {
			t.Errorf("pages: got %v, want %v", got, names)
		}
		if last != seq {
			t.Errorf("LastDomainChange: got %d, want %d", last, seq)
		}
		if page, err := db.DomainChanges(ctx, 0, 0); err != nil || len(page) != 0 {
			t.Errorf("DomainChanges(limit 0): got %v, %v, want none", page, err)
		}
	})

	t.Run("EmptyLog", func(t *testing.T) {
		db := MustOpenDB(t)
		last, err := db.LastDomainChange(ctx)
		mustNoErr(t, err)
		if last != 0 {
			t.Errorf("LastDomainChange of an empty log: got %d, want 0", last)
		}
	})

	// PurgeSessions ages the domain log out as it does the session end
	// log, and a seq never comes back.
	t.Run("Purged", func(t *testing.T) {
		db := MustOpenDB(t)
		mustNoErr(t, db.AddDomain(ctx, "old", at(1)))
		mustNoErr(t, db.AddDomain(ctx, "recent", at(10)))
		reader, err := db.LastDomainChange(ctx)
		mustNoErr(t, err)
		_, err = db.PurgeSessions(ctx, at(10))
		mustNoErr(t, err)
		if got, want := mustDomainChanges(t, db, 0), []string{"recent:added"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("domain log after the purge: got %v, want %v", got, want)
		}
		_, err = db.PurgeSessions(ctx, at(11))
		mustNoErr(t, err)
		mustNoErr(t, db.AddDomain(ctx, "new", at(20)))
		if got, want := mustDomainChanges(t, db, reader), []string{"new:added"}; !reflect.DeepEqual(got, want) {
			t.Errorf("entries after the reader's seq %d: got %v, want %v", reader, got, want)
		}
		// The purge touches the log only: the domains stay.
		if got, want := domainNames(t, db), []string{pos.DefaultDomain, "new", "old", "recent"}; !reflect.DeepEqual(got, want) {
			t.Errorf("Domains after the purge: got %v, want %v", got, want)
		}
	})
}

// TestDomainIsolation: nothing crosses domains. The same names (users,
// groups) in two domains are two of each, each seen only in its own.
func TestDomainIsolation(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	mustAddDomain(t, db, "acme")
	mustAddDomain(t, db, "bistro")
	mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: "acme", Name: "staff", Permissions: []pos.Permission{pos.DeveloperEdit, pos.DeveloperView}}))
	mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: "bistro", Name: "staff"}))
	mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: "bistro", Name: "owners", Permissions: []pos.Permission{pos.DeveloperView}}))
	acmeAnn, err := db.AddUser(ctx, pos.User{Domain: "acme", Name: "ann", Group: "staff", PasswordHash: []byte("acme-hash")})
	mustNoErr(t, err)
	bistroAnn, err := db.AddUser(ctx, pos.User{Domain: "bistro", Name: "ann", Group: "staff", PasswordHash: []byte("bistro-hash")})
	mustNoErr(t, err)

	t.Run("Users", func(t *testing.T) {
		wantAcme := pos.User{ID: acmeAnn.ID, Domain: "acme", Name: "ann", Group: "staff", PasswordHash: []byte("acme-hash"),
			Permissions: []pos.Permission{pos.DeveloperEdit, pos.DeveloperView}}
		wantBistro := pos.User{ID: bistroAnn.ID, Domain: "bistro", Name: "ann", Group: "staff", PasswordHash: []byte("bistro-hash")}
		if acmeAnn.ID == bistroAnn.ID {
			t.Errorf("ids: got %d in both domains, want them distinct", acmeAnn.ID)
		}
		for _, want := range []pos.User{wantAcme, wantBistro} {
			got, err := db.UserByName(ctx, want.Domain, "ann")
			mustNoErr(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("UserByName(%s, ann): got %+v, want %+v", want.Domain, got, want)
			}
			got, err = db.UserByID(ctx, want.ID)
			mustNoErr(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("UserByID(%d): got %+v, want %+v", want.ID, got, want)
			}
			users, err := db.Users(ctx, want.Domain)
			mustNoErr(t, err)
			if !reflect.DeepEqual(users, []pos.User{want}) {
				t.Errorf("Users(%s): got %+v, want [%+v]", want.Domain, users, want)
			}
		}
		_, err := db.UserByName(ctx, pos.DefaultDomain, "ann")
		wantCode(t, err, pos.ENOTFOUND)
		if got, want := pos.ErrorMessage(err), `user "ann" not found`; got != want {
			t.Errorf("message: got %q, want %q", got, want)
		}
		if users, err := db.Users(ctx, pos.DefaultDomain); err != nil || len(users) != 0 {
			t.Errorf("Users(default): got %+v, %v, want none", users, err)
		}
	})

	t.Run("Groups", func(t *testing.T) {
		got, err := db.Groups(ctx, "bistro")
		mustNoErr(t, err)
		want := []pos.Group{
			{Domain: "bistro", Name: "owners", Permissions: []pos.Permission{pos.DeveloperView}},
			{Domain: "bistro", Name: "staff"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Groups(bistro): got %+v, want %+v", got, want)
		}
		// A group is looked up in the user's own domain only.
		_, err = db.AddUser(ctx, pos.User{Domain: "acme", Name: "bob", Group: "owners"})
		wantCode(t, err, pos.ENOTFOUND)
		_, err = db.UpdateUser(ctx, pos.User{Domain: "acme", Name: "ann", Group: "owners"}, t0)
		wantCode(t, err, pos.ENOTFOUND)
	})

	t.Run("ChangesStayInTheirDomain", func(t *testing.T) {
		mustCreateSessions(t, db, acmeAnn, "acme-s")
		mustCreateSessions(t, db, bistroAnn, "bistro-s")
		ended, err := db.UpdateUser(ctx, pos.User{Domain: "bistro", Name: "ann", Group: "owners", PasswordHash: []byte("new")}, at(5))
		mustNoErr(t, err)
		if want := []string{"bistro-s"}; !reflect.DeepEqual(ended, want) {
			t.Errorf("UpdateUser(bistro ann) ended: got %v, want %v", ended, want)
		}
		wantLive(t, db, "acme-s")
		got, err := db.UserByName(ctx, "acme", "ann")
		mustNoErr(t, err)
		if got.Group != "staff" || string(got.PasswordHash) != "acme-hash" {
			t.Errorf("acme's ann after bistro's changed: got %+v, want unchanged", got)
		}
		// Replacing a group changes its domain's only.
		mustNoErr(t, db.PutGroup(ctx, pos.Group{Domain: "bistro", Name: "staff", Permissions: []pos.Permission{pos.DeveloperView}}))
		if got, _ := db.UserByName(ctx, "acme", "ann"); !got.Can(pos.DeveloperEdit) {
			t.Errorf("acme's ann after bistro's staff was replaced: got %v, want developer.edit kept", got.Permissions)
		}
		_, err = db.DeleteUser(ctx, "bistro", "ann", at(6))
		mustNoErr(t, err)
		if _, err := db.UserByName(ctx, "acme", "ann"); err != nil {
			t.Errorf("acme's ann after bistro's was deleted: got %v, want it there", err)
		}
		// The name is free again in bistro, with a new id.
		again, err := db.AddUser(ctx, pos.User{Domain: "bistro", Name: "ann", Group: "staff"})
		mustNoErr(t, err)
		if again.ID <= bistroAnn.ID {
			t.Errorf("bistro's new ann: got id %d, want above %d", again.ID, bistroAnn.ID)
		}
		_, err = db.AddUser(ctx, pos.User{Domain: "bistro", Name: "ann", Group: "staff"})
		wantCode(t, err, pos.ECONFLICT)
	})

	t.Run("Settings", func(t *testing.T) {
		save := func(domain string, ms, n int64) {
			t.Helper()
			mustNoErr(t, db.SaveSettings(ctx, domain, pos.Settings{ExpirationSeconds: n, UpdatedBy: domain + "-admin", UpdatedAt: at(ms)},
				pos.SettingsChange{At: at(ms), By: domain + "-admin", New: n}))
		}
		save("acme", 1, 60)
		save("bistro", 2, 120)
		save("acme", 3, 90)
		for domain, want := range map[string]pos.Settings{
			"acme":            {ExpirationSeconds: 90, UpdatedBy: "acme-admin", UpdatedAt: at(3)},
			"bistro":          {ExpirationSeconds: 120, UpdatedBy: "bistro-admin", UpdatedAt: at(2)},
			pos.DefaultDomain: pos.DefaultSettings(),
		} {
			got, err := db.Settings(ctx, domain)
			mustNoErr(t, err)
			if got.ExpirationSeconds != want.ExpirationSeconds || got.UpdatedBy != want.UpdatedBy || !got.UpdatedAt.Equal(want.UpdatedAt) {
				t.Errorf("Settings(%s): got %+v, want %+v", domain, got, want)
			}
		}
		for domain, want := range map[string][]int64{"acme": {90, 60}, "bistro": {120}, pos.DefaultDomain: nil} {
			changes, err := db.SettingsChanges(ctx, domain, 10)
			mustNoErr(t, err)
			var got []int64
			for _, c := range changes {
				got = append(got, c.New)
				if c.By != domain+"-admin" {
					t.Errorf("SettingsChanges(%s): got a change by %q", domain, c.By)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("SettingsChanges(%s) New: got %v, want %v", domain, got, want)
			}
		}
	})

	t.Run("Sessions", func(t *testing.T) {
		s, err := db.Session(ctx, "acme-s")
		mustNoErr(t, err)
		if s.Domain != "acme" || s.UserID != acmeAnn.ID {
			t.Errorf("Session(acme-s): got %+v, want of acme's ann", s)
		}
		live, err := db.LiveSessions(ctx)
		mustNoErr(t, err)
		if len(live) != 1 || live[0].ID != "acme-s" || live[0].Domain != "acme" {
			t.Errorf("LiveSessions: got %+v, want acme-s of acme", live)
		}
	})
}

// TestUnknownDomain: every method that names a domain that does not exist
// is ENOTFOUND saying which, and stores nothing.
func TestUnknownDomain(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	seed(t, db) // the names exist, in default
	const nowhere = "nowhere"
	errOf := func(_ any, err error) error { return err }
	for name, err := range map[string]error{
		"PutGroup":          db.PutGroup(ctx, pos.Group{Domain: nowhere, Name: "cashiers"}),
		"Groups":            errOf(db.Groups(ctx, nowhere)),
		"AddUser":           errOf(db.AddUser(ctx, pos.User{Domain: nowhere, Name: "new", Group: "cashiers"})),
		"UpdateUser":        errOf(db.UpdateUser(ctx, pos.User{Domain: nowhere, Name: "admin", Group: "cashiers"}, t0)),
		"DeleteUser":        errOf(db.DeleteUser(ctx, nowhere, "admin", t0)),
		"UserByName":        errOf(db.UserByName(ctx, nowhere, "admin")),
		"Users":             errOf(db.Users(ctx, nowhere)),
		"Settings":          errOf(db.Settings(ctx, nowhere)),
		"SaveSettings":      db.SaveSettings(ctx, nowhere, pos.Settings{ExpirationSeconds: 60}, pos.SettingsChange{New: 60}),
		"SettingsChanges":   errOf(db.SettingsChanges(ctx, nowhere, 10)),
		"SettingsChanges 0": errOf(db.SettingsChanges(ctx, nowhere, 0)),
		"CreateSession":     db.CreateSession(ctx, pos.Session{ID: "s", Domain: nowhere, UserID: 1, Username: "admin", Created: t0, LastActivity: t0}),
		"CreateSession ''":  db.CreateSession(ctx, pos.Session{ID: "s", UserID: 1, Username: "admin", Created: t0, LastActivity: t0}),
		"RemoveDomain":      errOf(db.RemoveDomain(ctx, nowhere, true, t0)),
	} {
		wantCode(t, err, pos.ENOTFOUND)
		if got := pos.ErrorMessage(err); !strings.HasPrefix(got, `domain "`) || !strings.HasSuffix(got, `" not found`) {
			t.Errorf("%s: got message %q, want domain %q not found", name, got, nowhere)
		}
	}
	for query, want := range map[string]int{
		`SELECT count(*) FROM sessions`:         0,
		`SELECT count(*) FROM settings`:         0,
		`SELECT count(*) FROM settings_changes`: 0,
		`SELECT count(*) FROM groups`:           2,
		`SELECT count(*) FROM users`:            2,
		`SELECT count(*) FROM domain_changes`:   0,
	} {
		if got := mustCount(t, db, query); got != want {
			t.Errorf("%s: got %d, want %d", query, got, want)
		}
	}
	got, err := db.UserByName(ctx, pos.DefaultDomain, "admin")
	mustNoErr(t, err)
	if got.Group != "developers" {
		t.Errorf("default's admin: got %+v, want unchanged", got)
	}
}
