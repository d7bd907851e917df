package storetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/sqlite"
)

// seedTwoDomains is a seed as the fixtures write one, in the default
// domain, and a second domain with the same user name in it.
func seedTwoDomains(ctx context.Context, db *sqlite.DB) error {
	if err := db.AddDomain(ctx, "acme", t0); err != nil {
		return err
	}
	for _, d := range []string{pos.DefaultDomain, "acme"} {
		if err := db.PutGroup(ctx, pos.Group{Domain: d, Name: "cashiers"}); err != nil {
			return err
		}
		if _, err := db.AddUser(ctx, pos.User{Domain: d, Name: "cashier", Group: "cashiers", PasswordHash: []byte(d)}); err != nil {
			return err
		}
	}
	return db.SaveSettings(ctx, "acme", pos.Settings{ExpirationSeconds: 60, UpdatedBy: "fixture", UpdatedAt: t0},
		pos.SettingsChange{At: t0, By: "fixture", Old: pos.DefaultExpirationSeconds, New: 60})
}

func TestTemplate(t *testing.T) {
	ctx := context.Background()
	var seeds atomic.Int32
	tmpl := NewTemplate(func(ctx context.Context, db *sqlite.DB) error {
		seeds.Add(1)
		return seedTwoDomains(ctx, db)
	})
	a, b := tmpl.Open(t), tmpl.Open(t)
	if n := seeds.Load(); n != 1 {
		t.Errorf("seed ran %d times for two opens, want once", n)
	}
	for _, db := range []*sqlite.DB{a, b} {
		domains, err := db.Domains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(domains) != 2 || domains[0].Name != "acme" || domains[1].Name != pos.DefaultDomain {
			t.Errorf("Domains of a copy: got %+v, want acme and default", domains)
		}
		for _, d := range []string{pos.DefaultDomain, "acme"} {
			u, err := db.UserByName(ctx, d, "cashier")
			if err != nil || u.Domain != d || string(u.PasswordHash) != d {
				t.Errorf("UserByName(%s, cashier): got %+v, %v, want the seeded one", d, u, err)
			}
		}
		if s, err := db.Settings(ctx, "acme"); err != nil || s.ExpirationSeconds != 60 {
			t.Errorf("Settings(acme): got %+v, %v, want 60 s", s, err)
		}
	}
	// Copies are independent: what one test does, the next does not see.
	if _, err := a.RemoveDomain(ctx, "acme", true, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Users(ctx, "acme"); err != nil {
		t.Errorf("Users(acme) in the other copy after the first removed it: got %v, want it there", err)
	}
}

func TestTemplateSeedError(t *testing.T) {
	tmpl := NewTemplate(func(ctx context.Context, db *sqlite.DB) error {
		return db.AddDomain(ctx, "Not A Label", t0)
	})
	if _, err := tmpl.image(); pos.ErrorCode(err) != pos.EINVALID {
		t.Errorf("image of a failing seed: got %v, want its EINVALID", err)
	}
}

func TestFaulty(t *testing.T) {
	ctx := context.Background()
	f := &Faulty{DB: NewTemplate(seedTwoDomains).Open(t)}
	u, err := f.UserByName(ctx, "acme", "cashier")
	if err != nil {
		t.Fatal(err)
	}
	s := pos.Session{ID: "s", Domain: "acme", UserID: u.ID, Username: u.Name, Created: t0, LastActivity: t0}
	if err := f.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}

	f.Failing.Store(true)
	for name, err := range map[string]error{
		"SaveActivity":   f.SaveActivity(ctx, []pos.Activity{{SessionID: "s", LastActivity: t0.Add(time.Second)}}),
		"RevokeSession":  f.RevokeSession(ctx, "s", t0, protocol.ReasonSignedOut),
		"RevokeSessions": f.RevokeSessions(ctx, []pos.Revocation{{SessionID: "s", At: t0, Reason: protocol.ReasonIdle}}),
	} {
		if !errors.Is(err, ErrDiskFull) {
			t.Errorf("%s while failing: got %v, want ErrDiskFull", name, err)
		}
	}
	got, err := f.Session(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if got.Revoked || !got.LastActivity.Equal(t0) {
		t.Errorf("session after failed writes: got %+v, want it as created", got)
	}
	// The rest is the real store, failing or not.
	if err := f.AddDomain(ctx, "bistro", t0); err != nil {
		t.Errorf("AddDomain while failing: got %v, want nil", err)
	}

	f.Failing.Store(false)
	if err := f.RevokeSession(ctx, "s", t0.Add(time.Second), protocol.ReasonSignedOut); err != nil {
		t.Fatal(err)
	}
	got, err = f.Session(ctx, "s")
	if err != nil || !got.Revoked || got.Domain != "acme" {
		t.Errorf("session after RevokeSession: got %+v, %v, want revoked, of acme", got, err)
	}
	live, err := f.LiveSessions(ctx)
	if err != nil || len(live) != 0 {
		t.Errorf("LiveSessions: got %+v, %v, want none", live, err)
	}
}
