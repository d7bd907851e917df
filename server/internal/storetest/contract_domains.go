package storetest

import (
	"context"
	"errors"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"reflect"
	"strings"
	"testing"
)

func testDomains(t *testing.T, c contract) {
	ctx := context.Background()

	t.Run("DefaultExists", func(t *testing.T) {
		db := c.open(t)
		domains, err := db.Domains(ctx)
		mustNoErr(t, err)
		if len(domains) != 1 || domains[0].Name != pos.DefaultDomain || domains[0].Created.IsZero() {
			t.Errorf("Domains of new storage: got %+v, want default with its creation time", domains)
		}
		if got := mustDomainChanges(t, db, 0); len(got) != 0 {
			t.Errorf("domain log of new storage: got %v, want empty", got)
		}
	})

	t.Run("AddAndList", func(t *testing.T) {
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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
			if n := c.rows(t, db, table, "acme"); n != 0 {
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
		db := c.open(t)
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
		if n := c.rows(t, db, "group_permissions", ""); n != 0 {
			t.Errorf("group_permissions rows: got %d, want 0", n)
		}
	})

	// The default domain is a domain like the others; a server with no
	// domain suffix then serves nothing until it is added again.
	t.Run("RemoveDefault", func(t *testing.T) {
		db := c.open(t)
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
		db := c.open(t)
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

func testDomainLog(t *testing.T, c contract) {
	ctx := context.Background()

	t.Run("Paging", func(t *testing.T) {
		db := c.open(t)
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
		db := c.open(t)
		last, err := db.LastDomainChange(ctx)
		mustNoErr(t, err)
		if last != 0 {
			t.Errorf("LastDomainChange of an empty log: got %d, want 0", last)
		}
	})

	// PurgeSessions ages the domain log out as it does the session end
	// log, and a seq never comes back.
	t.Run("Purged", func(t *testing.T) {
		db := c.open(t)
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
