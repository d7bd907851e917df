package pos

import "time"

// DefaultDomain is the one domain a server without a domain suffix serves
// on every host, and where an upgraded single-shop data directory's users,
// setting and sessions live.
const DefaultDomain = "default"

// MaxDomainLen is a DNS label's limit: a domain is the first label of its
// host name.
const MaxDomainLen = 63

// Domain is one POS business: its users, groups, settings, change record
// and sessions. Nothing crosses domains.
type Domain struct {
	Name    string
	Created time.Time
}

// ValidateDomain is the one rule for domain names: a DNS label of 1 to 63
// lowercase letters a-z, digits and hyphens, neither first nor last. It is
// the error EINVALID naming field "domain".
func ValidateDomain(name string) error {
	if name == "" || len(name) > MaxDomainLen {
		return Invalid("domain", "domain must be 1 to %d characters", MaxDomainLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return Invalid("domain", "domain may hold only lowercase letters a-z, digits and hyphens (not first or last)")
		}
	}
	return nil
}

// DomainChange is one entry of the domain log: a domain added or removed,
// in commit order, so that a running server learns of what the CLI did.
type DomainChange struct {
	Seq     int64
	Domain  string
	Removed bool // false: added
}
