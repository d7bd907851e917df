package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// PutGroup creates or replaces a group of g.Domain (ENOTFOUND) and its
// permissions.
func (db *DB) PutGroup(ctx context.Context, g pos.Group) error {
	perms := make([]string, len(g.Permissions))
	for i, p := range g.Permissions {
		perms[i] = string(p)
	}
	return db.write(ctx, "put group", func(tx pgx.Tx) error {
		if err := lockDomain(ctx, tx, g.Domain, keyShare); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO groups (domain, name) VALUES ($1, $2) ON CONFLICT (domain, name) DO NOTHING`,
			g.Domain, g.Name); err != nil {
			return err
		}
		// One PutGroup of a group at a time (nodes starting together with
		// -demo each put the same groups): without the row lock, two
		// deletes see no rows and both inserts collide.
		if _, err := tx.Exec(ctx,
			`SELECT 1 FROM groups WHERE domain = $1 AND name = $2 FOR UPDATE`, g.Domain, g.Name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			`DELETE FROM group_permissions WHERE domain = $1 AND group_name = $2`, g.Domain, g.Name); err != nil {
			return err
		}
		// DISTINCT: a permission listed twice is still one permission.
		_, err := tx.Exec(ctx, `
			INSERT INTO group_permissions (domain, group_name, permission)
			SELECT DISTINCT $1::text, $2::text, p FROM unnest($3::text[]) AS p`,
			g.Domain, g.Name, perms)
		return err
	})
}

// Groups returns every group of a domain (ENOTFOUND) by name, permissions
// sorted.
func (db *DB) Groups(ctx context.Context, domain string) (groups []pos.Group, err error) {
	err = db.read(ctx, "groups", func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `
			SELECT g.name, gp.permission
			FROM groups g LEFT JOIN group_permissions gp
				ON gp.domain = g.domain AND gp.group_name = g.name
			WHERE g.domain = $1
			ORDER BY g.name, gp.permission`, domain)
		var name string
		var perm *string
		if _, err := pgx.ForEachRow(rows, []any{&name, &perm}, func() error {
			if len(groups) == 0 || groups[len(groups)-1].Name != name {
				groups = append(groups, pos.Group{Domain: domain, Name: name})
			}
			if perm != nil {
				g := &groups[len(groups)-1]
				g.Permissions = append(g.Permissions, pos.Permission(*perm))
			}
			return nil
		}); err != nil {
			return err
		}
		if len(groups) == 0 {
			return domainExists(ctx, tx, domain)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return groups, nil
}

// AddUser creates a user in an existing group of u.Domain and returns it
// with its ID and permissions.
func (db *DB) AddUser(ctx context.Context, u pos.User) (pos.User, error) {
	err := db.write(ctx, "add user", func(tx pgx.Tx) error {
		if err := lockDomain(ctx, tx, u.Domain, keyShare); err != nil {
			return err
		}
		if err := groupExists(ctx, tx, u.Domain, u.Group); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRow(ctx, `
			INSERT INTO users (domain, name, group_name, password_hash) VALUES ($1, $2, $3, $4)
			ON CONFLICT (domain, name) DO NOTHING
			RETURNING id`,
			u.Domain, u.Name, u.Group, hash(u.PasswordHash)).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return pos.Errorf(pos.ECONFLICT, "user %q already exists", u.Name)
		} else if err != nil {
			return err
		}
		users, err := queryUsers(ctx, tx, `u.id = $1`, id)
		u, err = first(users, err, pos.Errorf(pos.ENOTFOUND, "user %d not found", id))
		return err
	})
	if err != nil {
		return pos.User{}, err
	}
	return u, nil
}

// UpdateUser changes the group and password hash of u.Domain's user u.Name
// and ends the user's live sessions in the same transaction: a session
// must not keep the permissions or the password it was opened with.
func (db *DB) UpdateUser(ctx context.Context, u pos.User, at time.Time) ([]string, error) {
	return db.changeUser(ctx, "update user", u.Domain, u.Name, at, func(tx pgx.Tx) (pgx.Row, error) {
		if err := groupExists(ctx, tx, u.Domain, u.Group); err != nil {
			return nil, err
		}
		return tx.QueryRow(ctx,
			`UPDATE users SET group_name = $1, password_hash = $2 WHERE domain = $3 AND name = $4 RETURNING id`,
			u.Group, hash(u.PasswordHash), u.Domain, u.Name), nil
	})
}

// DeleteUser deletes a user (ENOTFOUND) and ends its live sessions in the
// same transaction, so that no session outlives its user. The ended
// sessions' rows stay until the purge.
func (db *DB) DeleteUser(ctx context.Context, domain, name string, at time.Time) ([]string, error) {
	return db.changeUser(ctx, "delete user", domain, name, at, func(tx pgx.Tx) (pgx.Row, error) {
		return tx.QueryRow(ctx, `DELETE FROM users WHERE domain = $1 AND name = $2 RETURNING id`, domain, name), nil
	})
}

// changeUser runs change, a statement on the user named name in domain
// that returns its id, and ends that user's live sessions in the same
// transaction; it returns their ids.
func (db *DB) changeUser(ctx context.Context, op, domain, name string, at time.Time, change func(pgx.Tx) (pgx.Row, error)) (ended []string, err error) {
	err = db.write(ctx, op, func(tx pgx.Tx) error {
		// First, so that an unknown domain is reported as such rather
		// than as a missing group or user.
		if err := lockDomain(ctx, tx, domain, keyShare); err != nil {
			return err
		}
		row, err := change(tx)
		if err != nil {
			return err
		}
		var id int64
		if err := row.Scan(&id); errors.Is(err, pgx.ErrNoRows) {
			return pos.Errorf(pos.ENOTFOUND, "user %q not found", name)
		} else if err != nil {
			return err
		}
		ended, err = endSessions(ctx, tx, at, protocol.ReasonRevoked, `user_id = $1`, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// UserByName returns a domain's user with its group's permissions
// (ENOTFOUND for the user or the domain).
func (db *DB) UserByName(ctx context.Context, domain, name string) (u pos.User, err error) {
	err = db.read(ctx, "user by name", func(tx pgx.Tx) error {
		users, err := queryUsers(ctx, tx, `u.domain = $1 AND u.name = $2`, domain, name)
		if err == nil && len(users) == 0 {
			// Only a miss pays for telling the two apart.
			if err := domainExists(ctx, tx, domain); err != nil {
				return err
			}
		}
		u, err = first(users, err, pos.Errorf(pos.ENOTFOUND, "user %q not found", name))
		return err
	})
	return u, err
}

// UserByID returns a user, of whichever domain, with its group's
// permissions (ENOTFOUND).
func (db *DB) UserByID(ctx context.Context, id int64) (pos.User, error) {
	users, err := queryUsers(ctx, db.pool, `u.id = $1`, id)
	u, err := first(users, err, pos.Errorf(pos.ENOTFOUND, "user %d not found", id))
	return u, wrap("user by id", err)
}

// Users returns every user of a domain (ENOTFOUND) by name, with
// permissions.
func (db *DB) Users(ctx context.Context, domain string) (users []pos.User, err error) {
	err = db.read(ctx, "users", func(tx pgx.Tx) error {
		users, err = queryUsers(ctx, tx, `u.domain = $1`, domain)
		if err == nil && len(users) == 0 {
			err = domainExists(ctx, tx, domain)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return users, nil
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

// queryUsers reads users and their permissions in one statement, so that
// a concurrent PutGroup cannot pair a user with another version of its
// group.
func queryUsers(ctx context.Context, q querier, where string, args ...any) ([]pos.User, error) {
	// u.id after u.name keeps each user's rows together even where a name
	// recurs in several domains.
	rows, _ := q.Query(ctx, `
		SELECT u.id, u.domain, u.name, u.group_name, u.password_hash, gp.permission
		FROM users u LEFT JOIN group_permissions gp
			ON gp.domain = u.domain AND gp.group_name = u.group_name
		WHERE `+where+`
		ORDER BY u.name, u.id, gp.permission`, args...)
	var users []pos.User
	var u pos.User
	var perm *string
	_, err := pgx.ForEachRow(rows, []any{&u.ID, &u.Domain, &u.Name, &u.Group, &u.PasswordHash, &perm}, func() error {
		if len(users) == 0 || users[len(users)-1].ID != u.ID {
			users = append(users, u)
		}
		if perm != nil {
			last := &users[len(users)-1]
			last.Permissions = append(last.Permissions, pos.Permission(*perm))
		}
		return nil
	})
	return users, err
}

func groupExists(ctx context.Context, tx pgx.Tx, domain, name string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM groups WHERE domain = $1 AND name = $2`, domain, name).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
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
