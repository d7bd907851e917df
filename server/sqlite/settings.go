package sqlite

import (
	"context"
	"database/sql"

	"idleguard/server/pos"
)

// Settings returns a domain's saved setting, or pos.DefaultSettings before
// its first save (ENOTFOUND for an unknown domain).
func (db *DB) Settings(ctx context.Context, domain string) (s pos.Settings, err error) {
	err = db.read(ctx, "settings", func(tx *sql.Tx) error {
		var at int64
		err := tx.QueryRowContext(ctx,
			`SELECT expiration_seconds, updated_by, updated_at FROM settings WHERE domain = ?`, domain).
			Scan(&s.ExpirationSeconds, &s.UpdatedBy, &at)
		if err == sql.ErrNoRows {
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
// the change record can never disagree with the setting.
func (db *DB) SaveSettings(ctx context.Context, domain string, s pos.Settings, c pos.SettingsChange) error {
	return db.write(ctx, "save settings", func(tx *sql.Tx) error {
		if err := domainExists(ctx, tx, domain); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO settings (domain, expiration_seconds, updated_by, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (domain) DO UPDATE SET
				expiration_seconds = excluded.expiration_seconds,
				updated_by = excluded.updated_by,
				updated_at = excluded.updated_at`,
			domain, s.ExpirationSeconds, s.UpdatedBy, millis(s.UpdatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO settings_changes (domain, at, by, old, new) VALUES (?, ?, ?, ?, ?)`,
			domain, millis(c.At), c.By, c.Old, c.New)
		return err
	})
}

// SettingsChanges returns at most limit of a domain's changes, newest
// first (ENOTFOUND for an unknown domain); none when limit is not
// positive.
func (db *DB) SettingsChanges(ctx context.Context, domain string, limit int) ([]pos.SettingsChange, error) {
	var changes []pos.SettingsChange
	err := db.read(ctx, "settings changes", func(tx *sql.Tx) (err error) {
		if limit > 0 {
			// Newest is last saved: ids grow in commit order, whatever the
			// clock said (index settings_changes_by_domain).
			changes, err = scanAll(ctx, tx, func(rows *sql.Rows) (pos.SettingsChange, error) {
				var c pos.SettingsChange
				var at int64
				err := rows.Scan(&at, &c.By, &c.Old, &c.New)
				c.At = fromMillis(at)
				return c, err
			}, `SELECT at, by, old, new FROM settings_changes WHERE domain = ? ORDER BY id DESC LIMIT ?`, domain, limit)
			if err != nil || len(changes) > 0 {
				return err
			}
		}
		// SQLite reads LIMIT -1 as "no limit", so a limit not positive
		// reads nothing; it still learns whether the domain exists.
		return domainExists(ctx, tx, domain)
	})
	if err != nil {
		return nil, err
	}
	return changes, nil
}
