package storetest

import (
	"context"
	"idleguard/server/pos"
	"reflect"
	"testing"
)

func testSettings(t *testing.T, c contract) {
	ctx := context.Background()

	t.Run("DefaultUntilSaved", func(t *testing.T) {
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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
