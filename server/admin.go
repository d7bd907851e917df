package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"idleguard/server/guard"
)

// Demo groups and users: the seed article's three kinds of user.
var demoGroups = []guard.Group{
	{Name: "administrators", Permissions: []guard.Permission{guard.DeveloperView, guard.DeveloperEdit}},
	{Name: "supervisors", Permissions: []guard.Permission{guard.DeveloperView}},
	{Name: "cashiers"},
}

var demoUsers = []struct{ name, group string }{
	{"admin", "administrators"},
	{"viewer", "supervisors"},
	{"cashier", "cashiers"},
}

const demoPassword = "demo"

// seedDemo adds the demo groups and users once; it leaves existing users
// (and their passwords) as they are.
func seedDemo(ctx context.Context, dir guard.Directory) error {
	for _, g := range demoGroups {
		if err := dir.PutGroup(ctx, g); err != nil {
			return fmt.Errorf("seed demo group %s: %w", g.Name, err)
		}
	}
	var hash []byte
	for _, u := range demoUsers {
		if _, err := dir.UserByName(ctx, u.name); err == nil {
			continue
		} else if guard.ErrorCode(err) != guard.ENOTFOUND {
			return fmt.Errorf("seed demo user %s: %w", u.name, err)
		}
		if hash == nil {
			var err error
			if hash, err = bcrypt.GenerateFromPassword([]byte(demoPassword), bcrypt.DefaultCost); err != nil {
				return fmt.Errorf("seed demo: %w", err)
			}
		}
		if _, err := dir.AddUser(ctx, guard.User{Name: u.name, Group: u.group, PasswordHash: hash}); err != nil {
			return fmt.Errorf("seed demo user %s: %w", u.name, err)
		}
	}
	return nil
}

const adminUsage = `usage:
  idleguard user add NAME -group GROUP [-data DIR]   (password read from stdin)
  idleguard user passwd NAME [-data DIR]             (password read from stdin)
  idleguard user group NAME GROUP [-data DIR]
  idleguard user del NAME [-data DIR]
  idleguard user list [-data DIR]
  idleguard group put NAME [-perm developer.view,developer.edit] [-data DIR]
  idleguard group list [-data DIR]
`

// runAdmin manages users and groups in the data directory's store. It may
// run beside a live server: SQLite serialises the writes.
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, adminUsage)
		return errors.New("missing command")
	}
	what, verb := args[0], args[1]
	fs := flag.NewFlagSet("idleguard "+what+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	dataDir := fs.String("data", orDefault(getenv("IDLEGUARD_DATA"), "./data"), "data directory")
	group := fs.String("group", "", "the user's group")
	perms := fs.String("perm", "", "comma-separated permissions: "+permList())
	// Flags may come before or after the positional names.
	var pos []string
	rest := args[2:]
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	need := func(n int) error {
		if len(pos) != n {
			fmt.Fprint(stderr, adminUsage)
			return fmt.Errorf("%s %s takes %d name(s), got %d", what, verb, n, len(pos))
		}
		return nil
	}

	db, err := openStore(ctx, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()

	switch what + " " + verb {
	case "user add":
		if err := need(1); err != nil {
			return err
		}
		if *group == "" {
			return errors.New("user add needs -group")
		}
		hash, err := readPasswordHash(stdin)
		if err != nil {
			return err
		}
		if _, err := db.AddUser(ctx, guard.User{Name: pos[0], Group: *group, PasswordHash: hash}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added user %s to group %s\n", pos[0], *group)
	case "user passwd", "user group":
		if err := need(map[string]int{"passwd": 1, "group": 2}[verb]); err != nil {
			return err
		}
		u, err := db.UserByName(ctx, pos[0])
		if err != nil {
			return err
		}
		if verb == "passwd" {
			if u.PasswordHash, err = readPasswordHash(stdin); err != nil {
				return err
			}
		} else {
			u.Group = pos[1]
		}
		if err := db.UpdateUser(ctx, u); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "updated user %s\n", u.Name)
	case "user del":
		if err := need(1); err != nil {
			return err
		}
		if err := db.DeleteUser(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s\n", pos[0])
	case "user list":
		users, err := db.Users(ctx)
		if err != nil {
			return err
		}
		for _, u := range users {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", u.Name, u.Group, joinPerms(u.Permissions))
		}
	case "group put":
		if err := need(1); err != nil {
			return err
		}
		g := guard.Group{Name: pos[0]}
		for _, p := range strings.Split(*perms, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			if !guard.Permission(p).Known() {
				return fmt.Errorf("unknown permission %q (known: %s)", p, permList())
			}
			g.Permissions = append(g.Permissions, guard.Permission(p))
		}
		if err := db.PutGroup(ctx, g); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "group %s: %s\n", g.Name, joinPerms(g.Permissions))
	case "group list":
		groups, err := db.Groups(ctx)
		if err != nil {
			return err
		}
		for _, g := range groups {
			fmt.Fprintf(stdout, "%s\t%s\n", g.Name, joinPerms(g.Permissions))
		}
	default:
		fmt.Fprint(stderr, adminUsage)
		return fmt.Errorf("unknown command %q", what+" "+verb)
	}
	return nil
}

// readPasswordHash reads one line from stdin and hashes it with bcrypt.
func readPasswordHash(stdin io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 4 || len(pw) > 72 {
		return nil, errors.New("the password (one line on stdin) must be 4 to 72 bytes")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}

func permList() string { return joinPerms(guard.KnownPermissions) }

func joinPerms(ps []guard.Permission) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}
