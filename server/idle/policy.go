// Package idle is idleguard's idle clock: it knows each live session's last
// activity, computes its deadline from the current Expiration Time, and
// calls back when a session should be warned or signed out. It knows nothing
// of HTTP, WebSockets or SQL, and reads time only from an injected clock.
package idle

import "time"

// Policy is what the deadline depends on besides a session's own times.
type Policy struct {
	// Expiration is the Expiration Time: how long a session may be idle.
	Expiration time.Duration
	// MaxLifetime caps a session from its sign-in however active it is;
	// zero means no cap.
	MaxLifetime time.Duration
}

// Longest warning lead: the warning shows at most this long before the end.
const maxWarnLead = 30 * time.Second

// WarnLead is how long before the deadline the warning shows: the smaller of
// 30 s and a quarter of the Expiration Time.
func (p Policy) WarnLead() time.Duration {
	return min(maxWarnLead, p.Expiration/4)
}

// ReportEvery is how often a page reports ongoing input: often enough that
// the server's view is fresh, seldom enough that thousands of busy tills
// cost little. Each report carries the exact time of the last input, so the
// interval does not blur the deadline.
func (p Policy) ReportEvery() time.Duration {
	return min(max(p.Expiration/10, 200*time.Millisecond), 5*time.Second)
}

// Deadline is when a session created at created, last active at last, ends:
// min(last + Expiration, created + MaxLifetime).
func (p Policy) Deadline(created, last time.Time) time.Time {
	d := last.Add(p.Expiration)
	if p.MaxLifetime > 0 {
		if capAt := created.Add(p.MaxLifetime); capAt.Before(d) {
			return capAt
		}
	}
	return d
}

// Rebase turns a wall-clock time read from storage into one that carries
// now's monotonic reading, so that a later step of the wall clock moves no
// deadline. now must come from the clock (with a monotonic reading). A time
// in the future (the clock was stepped back across a restart) is clamped
// to now: otherwise a session could outlive its Expiration Time by the
// step, and no activity could ever pull its deadline back.
func Rebase(now, wall time.Time) time.Time {
	if wall.After(now) {
		return now
	}
	return now.Add(-now.Sub(wall))
}
