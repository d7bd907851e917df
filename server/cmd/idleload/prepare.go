package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"idleguard/server/pos"
	"idleguard/server/sqlite"
	"idleguard/server/token"
)

// The data a run starts from. Sessions are written straight into the store
// (sqlite.DB.CreateSession) and their tokens minted with the server's own
// key: 19,000 bcrypt logins would take about 20 minutes of CPU and measure
// bcrypt, not sockets. The one administrator who changes the setting signs
// in through the real POST /api/login.

const (
	// initialExpiration is the Expiration Time the run starts with: longer
	// than any run, so nothing ends before the sign-out phase.
	initialExpiration = 86400
	// lateBack is how long before the run the sign-out group was last
	// active; the setting change later picks the Expiration Time that puts
	// their deadlines in one chosen second.
	lateBack = 3600 * time.Second
	// cashiers share the sessions, as tills share a few accounts.
	cashiers = 200
)

type dataset struct {
	tokens    []string // by session index
	late      []int64  // deadline offset in ms within the sign-out second, or -1
	base      time.Time
	adminName string
	adminPass string
}

// lastActivity is where session i's idle clock starts: base for most, and
// for the sign-out group lateBack earlier plus its offset, so that one
// Expiration Time puts all their deadlines within one second.
func (d *dataset) lastActivity(i int) time.Time {
	if d.late[i] < 0 {
		return d.base
	}
	return d.base.Add(-lateBack + time.Duration(d.late[i])*time.Millisecond)
}

// prepare fills dir with a store holding n sessions, the first k of them in
// the sign-out group, and the signing key.
func prepare(ctx context.Context, dir string, n, k int) (*dataset, error) {
	db, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	key, err := token.LoadOrCreateKey(dir)
	if err != nil {
		return nil, err
	}
	iss := token.New(key, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience})
	return fill(ctx, db, iss, n, k, 1)
}

// fill writes the data set into db: the administrator, the cashiers, the
// Expiration Time, and n sessions (the first k in the sign-out group),
// with workers writing sessions at once (1 for SQLite's one writer; more
// for PostgreSQL, where each is a transaction of its own), each session's
// token minted by iss.
func fill(ctx context.Context, db pos.Store, iss *token.Issuer, n, k, workers int) (*dataset, error) {
	d := &dataset{adminName: "bench-admin", adminPass: pos.NewSessionID()}

	admins := pos.Group{Domain: pos.DefaultDomain, Name: "bench-admins", Permissions: []pos.Permission{pos.DeveloperView, pos.DeveloperEdit}}
	tills := pos.Group{Domain: pos.DefaultDomain, Name: "bench-cashiers"}
	for _, g := range []pos.Group{admins, tills} {
		if err := db.PutGroup(ctx, g); err != nil {
			return nil, err
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(d.adminPass), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	if _, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: d.adminName, Group: admins.Name, PasswordHash: hash}); err != nil {
		return nil, err
	}
	var users []pos.User
	for i := range cashiers {
		u, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: fmt.Sprintf("till%03d", i), Group: tills.Name, PasswordHash: hash})
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}

	now := time.Now().Round(0)
	if err := db.SaveSettings(ctx, pos.DefaultDomain,
		pos.Settings{ExpirationSeconds: initialExpiration, UpdatedBy: "idleload", UpdatedAt: now},
		pos.SettingsChange{At: now, By: "idleload", Old: pos.DefaultExpirationSeconds, New: initialExpiration}); err != nil {
		return nil, err
	}

	d.base = now.Truncate(time.Second)
	d.tokens = make([]string, n)
	d.late = make([]int64, n)
	for i := range n {
		d.late[i] = -1
		if i < k {
			d.late[i] = int64(i) * 1000 / int64(k) // spread over the second
		}
	}
	// Session i goes to worker i % workers; the first error stops them all.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, workers)
	for w := range max(workers, 1) {
		go func() {
			for i := w; i < n; i += max(workers, 1) {
				u := users[i%len(users)]
				sid := pos.NewSessionID()
				last := d.lastActivity(i)
				if err := db.CreateSession(ctx, pos.Session{ID: sid, Domain: pos.DefaultDomain, UserID: u.ID, Username: u.Name, Created: last, LastActivity: last}); err != nil {
					cancel()
					errs <- err
					return
				}
				tok, _, err := iss.Issue(pos.DefaultDomain, u.Name, sid, last.Add(initialExpiration*time.Second))
				if err != nil {
					cancel()
					errs <- err
					return
				}
				d.tokens[i] = tok
			}
			errs <- nil
		}()
	}
	var first error
	for range max(workers, 1) {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return d, nil
}

// The domains table's data set: many shops, each its own domain (d0000,
// d0001, ...) with one till account and two live sessions, and one chain
// whose many tills share one domain. Written straight into the store, as
// above; the administrators of the shop whose setting changes (the target)
// and of the chain sign in for real.

const (
	chainDomain   = "chain"
	chainSessions = 20000 // the issue's "one domain with 20,000 sessions"
	shopSessions  = 2
	domainAdmin   = "admin"
)

type domainsData struct {
	target    string
	adminPass string
	// socks are the sessions that get a socket: the target's first, then
	// the other shops', then the chain's; a socket's index is its I.
	socks    []domainSocket
	sessions int // in the store, every domain's
}

type domainSocket struct {
	domain, token string
}

// shopName names shop i of n: d0000 to d9999 for 10,000.
func shopName(i, n int) string {
	return fmt.Sprintf("d%0*d", max(4, len(fmt.Sprint(n-1))), i)
}

// prepareDomains fills dir with the domains table's store: shops small
// domains, of which the target (the middle one) and shopSockets/2 others,
// spread over the rest, have a socket on both their sessions; and the
// chain, chainSockets of whose sessions have one.
func prepareDomains(ctx context.Context, dir string, shops, shopSockets, chainSockets int) (*domainsData, error) {
	db, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	key, err := token.LoadOrCreateKey(dir)
	if err != nil {
		return nil, err
	}
	iss := token.New(key, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience})
	d := &domainsData{target: shopName(shops/2, shops), adminPass: pos.NewSessionID()}
	hash, err := bcrypt.GenerateFromPassword([]byte(d.adminPass), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	now := time.Now().Round(0)
	deadline := now.Add(pos.DefaultExpirationSeconds * time.Second)

	// domain creates a domain with a till account and its sessions, the
	// first withSockets of them minted a token and given a socket; admin
	// adds an administrator who may change the setting.
	domain := func(name string, sessions, withSockets int, admin bool) error {
		if err := db.AddDomain(ctx, name, now); err != nil {
			return err
		}
		tills := pos.Group{Domain: name, Name: "tills"}
		if err := db.PutGroup(ctx, tills); err != nil {
			return err
		}
		u, err := db.AddUser(ctx, pos.User{Domain: name, Name: "till", Group: tills.Name, PasswordHash: hash})
		if err != nil {
			return err
		}
		if admin {
			admins := pos.Group{Domain: name, Name: "admins", Permissions: []pos.Permission{pos.DeveloperView, pos.DeveloperEdit}}
			if err := db.PutGroup(ctx, admins); err != nil {
				return err
			}
			if _, err := db.AddUser(ctx, pos.User{Domain: name, Name: domainAdmin, Group: admins.Name, PasswordHash: hash}); err != nil {
				return err
			}
		}
		for k := range sessions {
			sid := pos.NewSessionID()
			if err := db.CreateSession(ctx, pos.Session{ID: sid, Domain: name, UserID: u.ID, Username: u.Name, Created: now, LastActivity: now}); err != nil {
				return err
			}
			if k >= withSockets {
				continue
			}
			tok, _, err := iss.Issue(name, u.Name, sid, deadline)
			if err != nil {
				return err
			}
			d.socks = append(d.socks, domainSocket{domain: name, token: tok})
		}
		d.sessions += sessions
		return nil
	}

	if err := domain(d.target, shopSessions, shopSessions, true); err != nil {
		return nil, err
	}
	var others []int // every shop but the target
	for i := range shops {
		if shopName(i, shops) != d.target {
			others = append(others, i)
		}
	}
	withSockets := map[int]bool{}
	if k := min(shopSockets/shopSessions, len(others)); k > 0 {
		for j := range k {
			withSockets[others[j*len(others)/k]] = true
		}
	}
	for _, i := range others {
		socks := 0
		if withSockets[i] {
			socks = shopSessions
		}
		if err := domain(shopName(i, shops), shopSessions, socks, false); err != nil {
			return nil, err
		}
	}
	if err := domain(chainDomain, chainSessions, chainSockets, true); err != nil {
		return nil, err
	}
	return d, nil
}
