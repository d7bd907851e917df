package storetest

import (
	"context"
	"errors"
	"fmt"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"reflect"
	"slices"
	"sync"
	"testing"
)

// testReopen is invariant 8: nothing is lost on restart.
func testReopen(t *testing.T, c contract) {
	ctx := context.Background()
	open := c.impl.New(t)
	db := open(t)
	admin, clerk := seed(t, db)
	settings := pos.Settings{ExpirationSeconds: 60, UpdatedBy: "admin", UpdatedAt: at(1)}
	mustNoErr(t, db.SaveSettings(ctx, pos.DefaultDomain, settings,
		pos.SettingsChange{At: at(1), By: "admin", Old: pos.DefaultExpirationSeconds, New: 60}))
	mustNoErr(t, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: "live", UserID: admin.ID, Username: "admin", Created: at(0), LastActivity: at(0)}))
	mustNoErr(t, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: "ended", UserID: clerk.ID, Username: "clerk", Created: at(0), LastActivity: at(0)}))
	mustNoErr(t, db.SaveActivity(ctx, []pos.Activity{{SessionID: "live", LastActivity: at(12345)}}))
	mustNoErr(t, db.RevokeSession(ctx, "ended", at(99), protocol.ReasonSignedOut))
	mustNoErr(t, db.Close())

	db = open(t)
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

// testConcurrentWrites runs writers and readers together: none may fail
// for being concurrent (SQLite's "database is locked"). AddUser reads
// before it writes, the pattern that fails at once when two transactions
// race for a write lock they did not take first.
func testConcurrentWrites(t *testing.T, c contract) {
	ctx := context.Background()
	db := c.open(t)
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

// testConcurrentActivity: batches of last-activity times for the same
// sessions, in opposite orders, written at once (two nodes holding tabs of
// the same sessions write behind together): none fails, as a store that
// locked rows in batch order would deadlock, and each session ends with
// the latest time of any batch.
func testConcurrentActivity(t *testing.T, c contract) {
	ctx := context.Background()
	db := c.open(t)
	admin, _ := seed(t, db)
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("s%02d", i))
	}
	mustCreateSessions(t, db, admin, ids...)
	const writers, rounds = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				batch := make([]pos.Activity, len(ids))
				for i, id := range ids {
					batch[i] = pos.Activity{SessionID: id, LastActivity: at(int64(r*writers + w))}
				}
				if w%2 == 1 {
					slices.Reverse(batch)
				}
				errs <- db.SaveActivity(ctx, batch)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent SaveActivity: got %v, want no error", err)
		}
	}
	latest := at(rounds*writers - 1)
	for _, id := range ids {
		s, err := db.Session(ctx, id)
		mustNoErr(t, err)
		if !s.LastActivity.Equal(latest) {
			t.Errorf("%s LastActivity: got %v, want the latest written, %v", id, s.LastActivity, latest)
		}
	}
}

func testErrorsWrapped(t *testing.T, c contract) {
	db := c.open(t)
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

// testPutGroupTogether puts one group from many writers at once, as nodes
// starting together with -demo do: every put succeeds and the group ends
// with its permissions once each.
func testPutGroupTogether(t *testing.T, c contract) {
	ctx := context.Background()
	db := c.open(t)
	g := pos.Group{Domain: pos.DefaultDomain, Name: "staff", Permissions: []pos.Permission{pos.DeveloperView, pos.DeveloperEdit}}
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*5)
	for range writers {
		wg.Go(func() {
			for range 5 {
				errs <- db.PutGroup(ctx, g)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("PutGroup at once: got %v, want no error", err)
		}
	}
	groups, err := db.Groups(ctx, pos.DefaultDomain)
	mustNoErr(t, err)
	if len(groups) != 1 || len(groups[0].Permissions) != 2 {
		t.Fatalf("Groups: got %+v, want staff with its 2 permissions", groups)
	}
}
