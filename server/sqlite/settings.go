package sqlite

import (
	"context"
	"database/sql"

	"idleguard/server/pos"
)

// Settings returns the saved setting, or pos.DefaultSettings before the
// first save.
func (db *DB) Settings(ctx context.Context) (pos.Settings, error) {
	var s pos.Settings
	var at int64
	err := db.r.QueryRowContext(ctx,
		`SELECT expiration_seconds, updated_by, updated_at FROM settings WHERE id = 1`).
		Scan(&s.ExpirationSeconds, &s.UpdatedBy, &at)
	if err == sql.ErrNoRows {
		return pos.DefaultSettings(), nil
	}
	if err != nil {
		return pos.Settings{}, wrap("settings", err)
	}
	s.UpdatedAt = fromMillis(at)
	return s, nil
}

// SaveSettings stores s and records c in one transaction, so the change
// record can never disagree with the setting.
func (db *DB) SaveSettings(ctx context.Context, s pos.Settings, c pos.SettingsChange) error {
	return db.write(ctx, "save settings", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO settings (id, expiration_seconds, updated_by, updated_at) VALUES (1, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				expiration_seconds = excluded.expiration_seconds,
				updated_by = excluded.updated_by,
				updated_at = excluded.updated_at`,
			s.ExpirationSeconds, s.UpdatedBy, millis(s.UpdatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO settings_changes (at, by, old, new) VALUES (?, ?, ?, ?)`,
			millis(c.At), c.By, c.Old, c.New)
		return err
	})
}

// SettingsChanges returns at most limit changes, newest first; none when
// limit is not positive.
func (db *DB) SettingsChanges(ctx context.Context, limit int) ([]pos.SettingsChange, error) {
	if limit <= 0 {
		return nil, nil // SQLite reads LIMIT -1 as "no limit"
	}
	// id breaks ties between changes saved in the same millisecond.
	return queryAll(ctx, db.r, "settings changes", func(rows *sql.Rows) (pos.SettingsChange, error) {
		var c pos.SettingsChange
		var at int64
		err := rows.Scan(&at, &c.By, &c.Old, &c.New)
		c.At = fromMillis(at)
		return c, err
	}, `SELECT at, by, old, new FROM settings_changes ORDER BY at DESC, id DESC LIMIT ?`, limit)
}
