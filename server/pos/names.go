package pos

import "strings"

// MaxNameLen is the longest user or group name.
const MaxNameLen = 64

// ValidateName is the one rule for user and group names, on the command line
// and in the API: 1 to 64 characters of lowercase ASCII letters, digits,
// '.', '_' and '-', starting with a letter or digit. It keeps names that
// print as one plain word (no spaces, newlines or escapes that forge lines
// in a listing), that cannot be lookalikes of another name in a different
// script or case, and that a sign-in can match case-insensitively.
// field is "username" or "group"; the error is EINVALID naming it.
func ValidateName(field, name string) error {
	if name == "" || len(name) > MaxNameLen {
		return Invalid(field, "%s must be 1 to %d characters", field, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return Invalid(field, "%s may hold only lowercase letters a-z, digits and . _ - (not first)", field)
		}
	}
	return nil
}

// CanonicalName is how a typed sign-in name is looked up: names are
// lowercase, so "Cashier" is the user cashier. Only A-Z are folded:
// strings.ToLower would also fold lookalikes such as the Kelvin sign (U+212A)
// into ASCII, and a name with any byte outside the rule matches nobody.
func CanonicalName(typed string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, typed)
}
