package storetest

import (
	"context"
	"idleguard/server/pos"
	"reflect"
	"strings"
	"testing"
)

// testDomainIsolation: nothing crosses domains. The same names (users,
// groups) in two domains are two of each, each seen only in its own.
func testDomainIsolation(t *testing.T, c contract) {
	ctx := context.Background()
	db := c.open(t)
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

// testUnknownDomain: every method that names a domain that does not exist
// is ENOTFOUND saying which, and stores nothing.
func testUnknownDomain(t *testing.T, c contract) {
	ctx := context.Background()
	db := c.open(t)
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
	for table, want := range map[string]int{
		"sessions":         0,
		"settings":         0,
		"settings_changes": 0,
		"groups":           2,
		"users":            2,
		"domain_changes":   0,
	} {
		if got := c.rows(t, db, table, ""); got != want {
			t.Errorf("rows of %s: got %d, want %d", table, got, want)
		}
	}
	got, err := db.UserByName(ctx, pos.DefaultDomain, "admin")
	mustNoErr(t, err)
	if got.Group != "developers" {
		t.Errorf("default's admin: got %+v, want unchanged", got)
	}
}
