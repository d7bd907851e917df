package pos

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateDomain(t *testing.T) {
	for _, ok := range []string{"a", "acme", "default", "shop-3", "0", "a-b", strings.Repeat("a", MaxDomainLen)} {
		if err := ValidateDomain(ok); err != nil {
			t.Errorf("ValidateDomain(%q): got %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "Acme", "a.b", "a_b", "a b", "ac\u212Ae", "аcme", "a\x00", strings.Repeat("a", MaxDomainLen+1)} {
		err := ValidateDomain(bad)
		var e *Error
		if !errors.As(err, &e) || e.Code != EINVALID || e.Field != "domain" {
			t.Errorf("ValidateDomain(%q): got %v, want EINVALID naming domain", bad, err)
		}
	}
}
