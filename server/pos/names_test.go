package pos

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "cashier", "till-3", "a.b_c", "0", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName("username", ok); err != nil {
			t.Errorf("ValidateName(%q): got %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", " a", "a ", "Admin", "-a", ".a", "a\nb", "a\x1b[2J", "аdmin", "\u212Aevin", "a\x00", strings.Repeat("a", MaxNameLen+1)} {
		err := ValidateName("username", bad)
		var e *Error
		if !errors.As(err, &e) || e.Code != EINVALID || e.Field != "username" {
			t.Errorf("ValidateName(%q): got %v, want EINVALID naming username", bad, err)
		}
	}
}

// Only ASCII letters fold: a lookalike that strings.ToLower would fold into
// ASCII (the Kelvin sign, U+212A, to k) stays as typed and matches nobody.
func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"Cashier": "cashier", "CASHIER": "cashier", "cashier": "cashier", "Till-3": "till-3",
		"\u212Aevin": "\u212Aevin", "İnci": "İnci", "ÅSA": "Åsa",
	} {
		if got := CanonicalName(in); got != want {
			t.Errorf("CanonicalName(%q): got %q, want %q", in, got, want)
		}
	}
}
