package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"idleguard/server/pos"
)

// Settings returns a domain's saved setting, or pos.DefaultSettings before
// its first save (ENOTFOUND for an unknown domain).
func (db *DB) Settings(ctx context.Context, domain string) (s pos.Settings, err error) {
	err = db.read(ctx, "settings", func(tx pgx.Tx) error {
		var at int64
		err := tx.QueryRow(ctx,
			`SELECT expiration_seconds, updated_by, updated_at FROM settings WHERE domain = $1`, domain).
			Scan(&s.ExpirationSeconds, &s.UpdatedBy, &at)
		if errors.Is(err, pgx.ErrNoRows) {
			s = pos.DefaultSettings()
			return domainExists(ctx, tx, domain)
		}
		s.UpdatedAt = fromMillis(at)
		return err
	})
	if err != nil {
		return pos.Settings{}, err
	}
	return s, nil
}

// SaveSettings stores a domain's s and records c in one transaction, so
// the change record can never disagree with the setting. The upsert takes
// the domain's settings row before the change draws its id, so two saves
// of one domain draw ids in the order they commit.
func (db *DB) SaveSettings(ctx context.Context, domain string, s pos.Settings, c pos.SettingsChange) error {
	return db.write(ctx, "save settings", func(tx pgx.Tx) error {
		if err := lockDomain(ctx, tx, domain, keyShare); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO settings (domain, expiration_seconds, updated_by, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (domain) DO UPDATE SET
				expiration_seconds = excluded.expiration_seconds,
				updated_by = excluded.updated_by,
				updated_at = excluded.updated_at`,
			domain, s.ExpirationSeconds, s.UpdatedBy, millis(s.UpdatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx,
			`INSERT INTO settings_changes (domain, at, by, old, new) VALUES ($1, $2, $3, $4, $5)`,
			domain, millis(c.At), c.By, c.Old, c.New)
		return err
	})
}

// SettingsChanges returns at most limit of a domain's changes, newest
// first (ENOTFOUND for an unknown domain); none when limit is not
// positive.
func (db *DB) SettingsChanges(ctx context.Context, domain string, limit int) ([]pos.SettingsChange, error) {
	var changes []pos.SettingsChange
	err := db.read(ctx, "settings changes", func(tx pgx.Tx) (err error) {
		if limit > 0 {
			rows, _ := tx.Query(ctx,
				`SELECT at, by, old, new FROM settings_changes WHERE domain = $1 ORDER BY id DESC LIMIT $2`, domain, limit)
			changes, err = collect(rows, func(row pgx.CollectableRow) (pos.SettingsChange, error) {
				var c pos.SettingsChange
				var at int64
				err := row.Scan(&at, &c.By, &c.Old, &c.New)
				c.At = fromMillis(at)
				return c, err
			})
			if err != nil || len(changes) > 0 {
				return err
			}
		}
		return domainExists(ctx, tx, domain)
	})
	if err != nil {
		return nil, err
	}
	return changes, nil
}
