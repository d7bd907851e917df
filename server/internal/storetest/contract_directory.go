package storetest

import (
	"context"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"reflect"
	"testing"
)

func testDirectory(t *testing.T, c contract) {
	ctx := context.Background()

	t.Run("AddAndLookUp", func(t *testing.T) {
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
		admin, clerk := seed(t, db)
		got, err := db.Users(ctx, pos.DefaultDomain)
		mustNoErr(t, err)
		if want := []pos.User{admin, clerk}; !reflect.DeepEqual(got, want) {
			t.Errorf("Users: got %+v, want %+v", got, want)
		}
	})

	t.Run("PutGroupReplaces", func(t *testing.T) {
		db := c.open(t)
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
		db := c.open(t)
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

func testUserChangesEndSessions(t *testing.T, c contract) {
	ctx := context.Background()

	t.Run("UpdateUser", func(t *testing.T) {
		db := c.open(t)
		admin, clerk := seed(t, db)
		mustCreateSessions(t, db, admin, "a2", "a1", "a3")
		mustCreateSessions(t, db, clerk, "c1")
		mustNoErr(t, db.RevokeSession(ctx, "a3", at(5), protocol.ReasonSignedOut))
		before := mustSessionEnds(t, db, 0)

		ended, err := db.UpdateUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "admin", Group: "cashiers", PasswordHash: []byte("new")}, at(50))
		mustNoErr(t, err)
		if want := []string{"a1", "a2"}; !reflect.DeepEqual(ended, want) {
			t.Errorf("UpdateUser ended: got %v, want %v", ended, want)
		}
		wantEnded(t, db, "a1", 50, protocol.ReasonRevoked)
		wantEnded(t, db, "a2", 50, protocol.ReasonRevoked)
		wantEnded(t, db, "a3", 5, protocol.ReasonSignedOut)
		wantLive(t, db, "c1")
		got := endIDs(mustSessionEnds(t, db, before[len(before)-1].Seq))
		if want := []string{"a1:revoked", "a2:revoked"}; !reflect.DeepEqual(got, want) {
			t.Errorf("session end log after UpdateUser: got %v, want %v", got, want)
		}

		// No live session left: the update succeeds and ends nothing.
		ended, err = db.UpdateUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "admin", Group: "developers"}, at(60))
		mustNoErr(t, err)
		if len(ended) != 0 {
			t.Errorf("second UpdateUser ended: got %v, want none", ended)
		}
	})

	t.Run("UpdateUserFailsChangesNothing", func(t *testing.T) {
		db := c.open(t)
		admin, _ := seed(t, db)
		mustCreateSessions(t, db, admin, "a1")
		for _, u := range []pos.User{{Domain: pos.DefaultDomain, Name: "admin", Group: "ghosts"}, {Domain: pos.DefaultDomain, Name: "nobody", Group: "cashiers"}} {
			ended, err := db.UpdateUser(ctx, u, at(50))
			wantCode(t, err, pos.ENOTFOUND)
			if ended != nil {
				t.Errorf("UpdateUser(%+v) ended: got %v, want nil", u, ended)
			}
		}
		wantLive(t, db, "a1")
		if ends := mustSessionEnds(t, db, 0); len(ends) != 0 {
			t.Errorf("session end log: got %+v, want empty", ends)
		}
		got, err := db.UserByName(ctx, pos.DefaultDomain, "admin")
		mustNoErr(t, err)
		if got.Group != "developers" {
			t.Errorf("admin's group: got %q, want developers", got.Group)
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		db := c.open(t)
		admin, clerk := seed(t, db)
		mustCreateSessions(t, db, admin, "a1")
		mustCreateSessions(t, db, clerk, "c1", "c2")
		ended, err := db.DeleteUser(ctx, pos.DefaultDomain, "clerk", at(70))
		mustNoErr(t, err)
		if want := []string{"c1", "c2"}; !reflect.DeepEqual(ended, want) {
			t.Errorf("DeleteUser ended: got %v, want %v", ended, want)
		}
		wantEnded(t, db, "c1", 70, protocol.ReasonRevoked)
		wantEnded(t, db, "c2", 70, protocol.ReasonRevoked)
		wantLive(t, db, "a1")
		if got, want := endIDs(mustSessionEnds(t, db, 0)), []string{"c1:revoked", "c2:revoked"}; !reflect.DeepEqual(got, want) {
			t.Errorf("session end log: got %v, want %v", got, want)
		}
		ended, err = db.DeleteUser(ctx, pos.DefaultDomain, "clerk", at(80))
		wantCode(t, err, pos.ENOTFOUND)
		if ended != nil {
			t.Errorf("second DeleteUser ended: got %v, want nil", ended)
		}
	})

	// The bug migration 2 fixes, seen from the new code: the next user
	// never gets a deleted user's id, so never its sessions.
	t.Run("DeletedIDNotReused", func(t *testing.T) {
		db := c.open(t)
		_, clerk := seed(t, db) // clerk is the newest
		mustCreateSessions(t, db, clerk, "c1")
		_, err := db.DeleteUser(ctx, pos.DefaultDomain, "clerk", at(1))
		mustNoErr(t, err)
		next, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "next", Group: "cashiers"})
		mustNoErr(t, err)
		if next.ID <= clerk.ID {
			t.Errorf("next user's ID: got %d, want above the deleted clerk's %d", next.ID, clerk.ID)
		}
		ended, err := db.RevokeUserSessions(ctx, next.ID, at(2), protocol.ReasonRevoked)
		mustNoErr(t, err)
		if len(ended) != 0 {
			t.Errorf("the next user's sessions: got %v, want none", ended)
		}
	})
}
