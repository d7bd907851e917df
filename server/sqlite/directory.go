package sqlite

import (
	"context"
	"database/sql"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// PutGroup creates or replaces a group and its permissions.
func (db *DB) PutGroup(ctx context.Context, g pos.Group) error {
	return db.write(ctx, "put group", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO groups (name) VALUES (?) ON CONFLICT (name) DO NOTHING`, g.Name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM group_permissions WHERE group_name = ?`, g.Name); err != nil {
			return err
		}
		for _, p := range g.Permissions {
			// OR IGNORE: a permission listed twice is still one permission.
			if _, err := tx.ExecContext(ctx,
				`INSERT OR IGNORE INTO group_permissions (group_name, permission) VALUES (?, ?)`,
				g.Name, string(p)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Groups returns every group by name, permissions sorted.
func (db *DB) Groups(ctx context.Context) ([]pos.Group, error) {
	rows, err := db.r.QueryContext(ctx, `
		SELECT g.name, gp.permission
		FROM groups g LEFT JOIN group_permissions gp ON gp.group_name = g.name
		ORDER BY g.name, gp.permission`)
	if err != nil {
		return nil, wrap("groups", err)
	}
	defer rows.Close()
	var groups []pos.Group
	for rows.Next() {
		var name string
		var perm sql.NullString
		if err := rows.Scan(&name, &perm); err != nil {
			return nil, wrap("groups", err)
		}
		if len(groups) == 0 || groups[len(groups)-1].Name != name {
			groups = append(groups, pos.Group{Name: name})
		}
		if perm.Valid {
			g := &groups[len(groups)-1]
			g.Permissions = append(g.Permissions, pos.Permission(perm.String))
		}
	}
	return groups, wrap("groups", rows.Err())
}

// AddUser creates a user in an existing group and returns it with its ID
// and permissions.
func (db *DB) AddUser(ctx context.Context, u pos.User) (pos.User, error) {
	err := db.write(ctx, "add user", func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, u.Group); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO users (name, group_name, password_hash) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`,
			u.Name, u.Group, hash(u.PasswordHash))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return pos.Errorf(pos.ECONFLICT, "user %q already exists", u.Name)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		users, err := queryUsers(ctx, tx, `u.id = ?`, id)
		u, err = first(users, err, pos.Errorf(pos.ENOTFOUND, "user %d not found", id))
		return err
	})
	if err != nil {
		return pos.User{}, err
	}
	return u, nil
}

// UpdateUser changes the group and password hash of the user named u.Name
// and ends the user's live sessions in the same transaction: a session
// must not keep the permissions or the password it was opened with.
func (db *DB) UpdateUser(ctx context.Context, u pos.User, at time.Time) ([]string, error) {
	return db.changeUser(ctx, "update user", u.Name, at, func(tx *sql.Tx) (*sql.Row, error) {
		if err := groupExists(ctx, tx, u.Group); err != nil {
			return nil, err
		}
		return tx.QueryRowContext(ctx,
			`UPDATE users SET group_name = ?, password_hash = ? WHERE name = ? RETURNING id`,
			u.Group, hash(u.PasswordHash), u.Name), nil
	})
}

// DeleteUser deletes a user (ENOTFOUND) and ends its live sessions in the
// same transaction, so that no session outlives its user. The ended
// sessions' rows stay until the purge.
func (db *DB) DeleteUser(ctx context.Context, name string, at time.Time) ([]string, error) {
	return db.changeUser(ctx, "delete user", name, at, func(tx *sql.Tx) (*sql.Row, error) {
		return tx.QueryRowContext(ctx, `DELETE FROM users WHERE name = ? RETURNING id`, name), nil
	})
}

// changeUser runs change, a statement on the user named name that returns
// its id, and ends that user's live sessions in the same transaction; it
// returns their ids.
func (db *DB) changeUser(ctx context.Context, op, name string, at time.Time, change func(*sql.Tx) (*sql.Row, error)) (ended []string, err error) {
	err = db.write(ctx, op, func(tx *sql.Tx) error {
		row, err := change(tx)
		if err != nil {
			return err
		}
		var id int64
		if err := row.Scan(&id); err == sql.ErrNoRows {
			return pos.Errorf(pos.ENOTFOUND, "user %q not found", name)
		} else if err != nil {
			return err
		}
		ended, err = endSessions(ctx, tx, at, protocol.ReasonRevoked, `user_id = ?`, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// UserByName returns a user with its group's permissions (ENOTFOUND).
func (db *DB) UserByName(ctx context.Context, name string) (pos.User, error) {
	users, err := queryUsers(ctx, db.r, `u.name = ?`, name)
	u, err := first(users, err, pos.Errorf(pos.ENOTFOUND, "user %q not found", name))
	return u, wrap("user by name", err)
}

// UserByID returns a user with its group's permissions (ENOTFOUND).
func (db *DB) UserByID(ctx context.Context, id int64) (pos.User, error) {
	users, err := queryUsers(ctx, db.r, `u.id = ?`, id)
	u, err := first(users, err, pos.Errorf(pos.ENOTFOUND, "user %d not found", id))
	return u, wrap("user by id", err)
}

// Users returns every user by name, with permissions.
func (db *DB) Users(ctx context.Context) ([]pos.User, error) {
	users, err := queryUsers(ctx, db.r, `1`)
	return users, wrap("users", err)
}

// querier is what *sql.DB and *sql.Tx share, so reads can run inside a
// write transaction too.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// first is the one user a lookup found, or notFound.
func first(users []pos.User, err error, notFound *pos.Error) (pos.User, error) {
	if err != nil {
		return pos.User{}, err
	}
	if len(users) == 0 {
		return pos.User{}, notFound
	}
	return users[0], nil
}

// queryUsers reads users and their permissions in one statement, so that a
// concurrent PutGroup cannot pair a user with another version of its group.
func queryUsers(ctx context.Context, q querier, where string, args ...any) ([]pos.User, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT u.id, u.name, u.group_name, u.password_hash, gp.permission
		FROM users u LEFT JOIN group_permissions gp ON gp.group_name = u.group_name
		WHERE `+where+`
		ORDER BY u.name, gp.permission`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var users []pos.User
	for rows.Next() {
		var u pos.User
		var perm sql.NullString
		if err := rows.Scan(&u.ID, &u.Name, &u.Group, &u.PasswordHash, &perm); err != nil {
			return nil, err
		}
		if len(users) == 0 || users[len(users)-1].ID != u.ID {
			users = append(users, u)
		}
		if perm.Valid {
			last := &users[len(users)-1]
			last.Permissions = append(last.Permissions, pos.Permission(perm.String))
		}
	}
	return users, rows.Err()
}

func groupExists(ctx context.Context, tx *sql.Tx, name string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM groups WHERE name = ?`, name).Scan(&one)
	if err == sql.ErrNoRows {
		return pos.Errorf(pos.ENOTFOUND, "group %q not found", name)
	}
	return err
}

// hash keeps a missing hash from binding as NULL: the column is NOT NULL,
// and an empty hash (no password set) is a value, not an unknown.
func hash(h []byte) []byte {
	if h == nil {
		return []byte{}
	}
	return h
}
