package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/sessions"
)

// Demo groups and users: the seed article's three kinds of user.
var demoGroups = []pos.Group{
	{Name: "administrators", Permissions: []pos.Permission{pos.DeveloperView, pos.DeveloperEdit}},
	{Name: "supervisors", Permissions: []pos.Permission{pos.DeveloperView}},
	{Name: "cashiers"},
}

var demoUsers = []struct{ name, group string }{
	{"admin", "administrators"},
	{"viewer", "supervisors"},
	{"cashier", "cashiers"},
}

const demoPassword = "demo"

// demoDomains are the businesses -demo seeds when the server serves
// domains (-domain-suffix); without it, only default.
var demoDomains = []string{"acme", "globex"}

// seedDemo adds the demo domains (other than default, which always
// exists), groups and users once; it leaves existing users (and their
// passwords) as they are.
func seedDemo(ctx context.Context, db pos.Store, domains []string, cost int) error {
	var hash []byte
	for _, d := range domains {
		if d != pos.DefaultDomain {
			if err := db.AddDomain(ctx, d, time.Now().Round(0)); err != nil && pos.ErrorCode(err) != pos.ECONFLICT {
				return fmt.Errorf("seed demo domain %s: %w", d, err)
			}
		}
		var err error
		if hash, err = seedDemoDomain(ctx, db, d, hash, cost); err != nil {
			return err
		}
	}
	return nil
}

// seedDemoDomain seeds one domain's groups and users; hash is the demo
// password's, made once for every domain.
func seedDemoDomain(ctx context.Context, dir pos.Directory, domain string, hash []byte, cost int) ([]byte, error) {
	for _, g := range demoGroups {
		g.Domain = domain
		if err := dir.PutGroup(ctx, g); err != nil {
			return nil, fmt.Errorf("seed demo group %s/%s: %w", domain, g.Name, err)
		}
	}
	for _, u := range demoUsers {
		if _, err := dir.UserByName(ctx, domain, u.name); err == nil {
			continue
		} else if pos.ErrorCode(err) != pos.ENOTFOUND {
			return nil, fmt.Errorf("seed demo user %s/%s: %w", domain, u.name, err)
		}
		if hash == nil {
			var err error
			if hash, err = bcrypt.GenerateFromPassword([]byte(demoPassword), cost); err != nil {
				return nil, fmt.Errorf("seed demo: %w", err)
			}
		}
		// ECONFLICT: another node of a cluster, starting with -demo too,
		// added it first.
		if _, err := dir.AddUser(ctx, pos.User{Domain: domain, Name: u.name, Group: u.group, PasswordHash: hash}); err != nil && pos.ErrorCode(err) != pos.ECONFLICT {
			return nil, fmt.Errorf("seed demo user %s/%s: %w", domain, u.name, err)
		}
	}
	return hash, nil
}

const adminUsage = `usage:
  idleguard domain add NAME [-data DIR]
  idleguard domain list [-data DIR]
  idleguard domain remove NAME [-force] [-data DIR]  (refused while it has users, unless -force:
                                                      then its users, groups, settings and sessions go too)
  idleguard user add NAME -group GROUP [-data DIR]   (password read from stdin)
  idleguard user passwd NAME [-data DIR]             (password read from stdin; ends NAME's sessions)
  idleguard user group NAME GROUP [-data DIR]        (ends NAME's sessions)
  idleguard user del NAME [-data DIR]                (ends NAME's sessions)
  idleguard user list [-data DIR]
  idleguard group put NAME [-perm developer.view,developer.edit] [-data DIR]
  idleguard group list [-data DIR]
  idleguard session list [-user NAME] [-data DIR]
  idleguard session revoke SESSION-ID [-data DIR]
  idleguard session revoke -user NAME [-data DIR]    (every session of NAME)

user, group and session commands act on one domain: -domain NAME (default: default).
A cluster's store: -postgres URL (or IDLEGUARD_POSTGRES) instead of -data.
Domain names are 1-63 lowercase letters a-z, digits and hyphens (not first or last).
User and group names are 1-64 lowercase letters a-z, digits and . _ - (not first).
A running server signs ended sessions out in every tab, and starts or stops
serving an added or removed domain, within about a second.
`

// runAdmin manages users, groups and sessions in the data directory's
// store. It may run beside a live server: SQLite serialises the writes,
// and the server reads the sessions this ends from the session end log.
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, adminUsage)
		return errors.New("missing command")
	}
	what, verb := args[0], args[1]
	if verb == "-h" || verb == "-help" || verb == "--help" {
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	fs := flag.NewFlagSet("idleguard "+what+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	dataDir := fs.String("data", orDefault(getenv("IDLEGUARD_DATA"), "./data"), "data directory")
	group := fs.String("group", "", "the user's group")
	perms := fs.String("perm", "", "comma-separated permissions: "+permList())
	user := fs.String("user", "", "the user whose sessions to list or revoke")
	domain := fs.String("domain", pos.DefaultDomain, "the domain of the users, groups or sessions")
	pgURL := fs.String("postgres", getenv("IDLEGUARD_POSTGRES"), "a cluster's PostgreSQL URL (instead of -data)")
	force := fs.Bool("force", false, "domain remove: remove a domain that still has users, with all of it")
	// Flags may come before or after the positional names.
	var names []string
	rest := args[2:]
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	need := func(n int) error {
		if len(names) != n {
			fmt.Fprint(stderr, adminUsage)
			return fmt.Errorf("%s %s takes %d name(s), got %d", what, verb, n, len(names))
		}
		return nil
	}

	if err := pos.ValidateDomain(*domain); err != nil {
		return errors.New(pos.ErrorMessage(err))
	}
	db, err := openStore(ctx, *dataDir, *pgURL)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().Round(0)

	switch what + " " + verb {
	case "domain add":
		if err := need(1); err != nil {
			return err
		}
		if err := pos.ValidateDomain(names[0]); err != nil {
			return errors.New(pos.ErrorMessage(err))
		}
		if err := db.AddDomain(ctx, names[0], now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added domain %s (no users yet: idleguard user add NAME -domain %s -group GROUP)\n", names[0], names[0])
	case "domain list":
		if err := need(0); err != nil {
			return err
		}
		doms, err := db.Domains(ctx)
		if err != nil {
			return err
		}
		for _, d := range doms {
			users, err := db.Users(ctx, d.Name)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\t%d user(s)\tadded %s\n", d.Name, len(users), d.Created.UTC().Format(time.RFC3339))
		}
	case "domain remove":
		if err := need(1); err != nil {
			return err
		}
		ended, err := db.RemoveDomain(ctx, names[0], *force, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed domain %s; ended %d session(s)\n", names[0], len(ended))
	case "user add":
		if err := need(1); err != nil {
			return err
		}
		if *group == "" {
			return errors.New("user add needs -group")
		}
		if err := pos.ValidateName("username", names[0]); err != nil {
			return errors.New(pos.ErrorMessage(err))
		}
		hash, err := readPasswordHash(stdin)
		if err != nil {
			return err
		}
		if _, err := db.AddUser(ctx, pos.User{Domain: *domain, Name: names[0], Group: *group, PasswordHash: hash}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added user %s to group %s of domain %s\n", names[0], printable(*group), *domain)
	case "user passwd", "user group":
		if err := need(map[string]int{"passwd": 1, "group": 2}[verb]); err != nil {
			return err
		}
		u, err := db.UserByName(ctx, *domain, names[0])
		if err != nil {
			return err
		}
		if verb == "passwd" {
			if u.PasswordHash, err = readPasswordHash(stdin); err != nil {
				return err
			}
		} else {
			u.Group = names[1]
		}
		ended, err := db.UpdateUser(ctx, u, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "updated user %s; ended %d session(s)\n", printable(u.Name), len(ended))
	case "user del":
		if err := need(1); err != nil {
			return err
		}
		ended, err := db.DeleteUser(ctx, *domain, names[0], now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s; ended %d session(s)\n", printable(names[0]), len(ended))
	case "user list":
		users, err := db.Users(ctx, *domain)
		if err != nil {
			return err
		}
		for _, u := range users {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", printable(u.Name), printable(u.Group), joinPerms(u.Permissions))
		}
	case "session list":
		if err := need(0); err != nil {
			return err
		}
		live, err := db.LiveSessions(ctx)
		if err != nil {
			return err
		}
		for _, sess := range live {
			if sess.Domain != *domain || *user != "" && sess.Username != *user {
				continue
			}
			// Last activity is written behind: up to a second old.
			fmt.Fprintf(stdout, "%s\t%s\tsigned in %s\tlast active %s\n", sess.ID, printable(sess.Username),
				sess.Created.UTC().Format(time.RFC3339), sess.LastActivity.UTC().Format(time.RFC3339))
		}
	case "session revoke":
		var ended []string
		switch {
		case *user != "" && len(names) == 0:
			u, err := db.UserByName(ctx, *domain, *user)
			if err != nil {
				return err
			}
			if ended, err = db.RevokeUserSessions(ctx, u.ID, now, protocol.ReasonRevoked); err != nil {
				return err
			}
		case *user == "" && len(names) == 1:
			s, err := db.Session(ctx, names[0])
			if err != nil {
				return err
			}
			if s.Domain != *domain {
				// Ids are unique, but an admin of one domain names only its own.
				return fmt.Errorf("session %s is not of domain %s", names[0], *domain)
			}
			if s.Revoked {
				return fmt.Errorf("session %s already ended (%s)", names[0], s.RevokedReason)
			}
			if err := db.RevokeSession(ctx, names[0], now, protocol.ReasonRevoked); err != nil {
				return err
			}
			ended = names
		default:
			fmt.Fprint(stderr, adminUsage)
			return errors.New("session revoke takes one SESSION-ID or -user NAME")
		}
		fmt.Fprintf(stdout, "ended %d session(s)\n", len(ended))
	case "group put":
		if err := need(1); err != nil {
			return err
		}
		if err := pos.ValidateName("group", names[0]); err != nil {
			return errors.New(pos.ErrorMessage(err))
		}
		g := pos.Group{Domain: *domain, Name: names[0]}
		for _, p := range strings.Split(*perms, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			if !pos.Permission(p).Known() {
				return fmt.Errorf("unknown permission %q (known: %s)", p, permList())
			}
			g.Permissions = append(g.Permissions, pos.Permission(p))
		}
		if err := db.PutGroup(ctx, g); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "group %s: %s\n", g.Name, joinPerms(g.Permissions))
	case "group list":
		groups, err := db.Groups(ctx, *domain)
		if err != nil {
			return err
		}
		for _, g := range groups {
			fmt.Fprintf(stdout, "%s\t%s\n", printable(g.Name), joinPerms(g.Permissions))
		}
	default:
		fmt.Fprint(stderr, adminUsage)
		return fmt.Errorf("unknown command %q", what+" "+verb)
	}
	return nil
}

// printable is a name as the CLI prints it: as it is when it follows the
// name rule, quoted with escapes otherwise (names stored before the rule),
// so that no name can forge a line or send a terminal escape.
func printable(name string) string {
	if pos.ValidateName("name", name) == nil {
		return name
	}
	return strconv.QuoteToASCII(name)
}

// readPasswordHash reads one line from stdin and hashes it with bcrypt.
func readPasswordHash(stdin io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 4 || len(pw) > sessions.MaxPasswordLen {
		return nil, fmt.Errorf("the password (one line on stdin) must be 4 to %d bytes", sessions.MaxPasswordLen)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}

func permList() string { return joinPerms(pos.KnownPermissions) }

func joinPerms(ps []pos.Permission) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}
