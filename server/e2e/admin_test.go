package e2e

import (
	"context"
	"idleguard/server/app"
	"idleguard/server/internal/apptest"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// waitSettingsLoaded waits until /admin shows the saved value and knows
// who is signed in (Save is enabled or not only from then on).
func (p *tab) waitSettingsLoaded(user, value string) {
	p.t.Helper()
	p.waitTrue(`document.getElementById('expiration-seconds').value === `+jsString(value)+
		` && document.getElementById('admin-user').textContent.startsWith(`+jsString(user+" (")+`)`,
		"the JWT tab to load for "+user)
}

// savedExpiration reads the setting over the API, as admin.
func savedExpiration(t *testing.T, base string) int64 {
	t.Helper()
	tok, _ := apptest.MustLogin(t, base, "admin", "demo")
	return apptest.GetSettings(t, base, tok).ExpirationSeconds
}

// Developer Configuration, JWT tab: a viewer sees the value and cannot
// save, a cashier gets the 403 page, and an admin's invalid input shows the
// server's message inline and changes nothing.
func TestE2EAdminPage(t *testing.T) {
	s := apptest.Start(t, app.RunReady)
	b := newE2EBrowser(t)
	const saved = "172800" // the default, 2 days

	t.Run("viewer", func(t *testing.T) {
		p := b.isolatedTab(t, "viewer")
		p.signIn(s.Base, "viewer", "demo")
		p.navigate(s.Base + "/admin")
		p.waitSettingsLoaded("viewer", saved)
		if got := eval[bool](p, `document.getElementById('save').disabled`); !got {
			t.Errorf("Save for the viewer: got enabled, want disabled")
		}
		if got := eval[bool](p, `document.getElementById('expiration-seconds').readOnly`); !got {
			t.Errorf("the field for the viewer: got editable, want read-only")
		}
		if note := p.text("save-note"); !strings.Contains(note, "Developer → Edit") {
			t.Errorf("#save-note: got %q, want it to name the Edit permission", note)
		}
		// Typing and clicking do nothing.
		p.do(clickID("expiration-seconds"), chromedp.KeyEvent("9"), clickID("save"))
		if got := eval[string](p, `document.getElementById('expiration-seconds').value`); got != saved {
			t.Errorf("field after the viewer typed: got %q, want %q", got, saved)
		}
		if got := savedExpiration(t, s.Base); strconv.FormatInt(got, 10) != saved {
			t.Errorf("saved value after the viewer's click: got %d, want %s", got, saved)
		}
	})

	t.Run("cashier", func(t *testing.T) {
		p := b.isolatedTab(t, "cashier")
		p.signIn(s.Base, "cashier", "demo")
		ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
		defer cancel()
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(s.Base+"/admin"))
		if err != nil {
			t.Fatalf("open /admin: %v", err)
		}
		if resp.Status != http.StatusForbidden {
			t.Errorf("/admin for the cashier: got status %d, want 403", resp.Status)
		}
		if got := p.text("forbidden-title"); got != "Developer Configuration is not available to you" {
			t.Errorf("403 page title: got %q", got)
		}
		if got := p.text("forbidden-message"); !strings.Contains(got, "Developer → View") {
			t.Errorf("403 page message: got %q, want it to name the View permission", got)
		}
	})

	t.Run("admin invalid input", func(t *testing.T) {
		p := b.isolatedTab(t, "admin")
		p.signIn(s.Base, "admin", "demo")
		p.navigate(s.Base + "/admin")
		for _, input := range []string{"abc", "-5"} {
			p.waitSettingsLoaded("admin", saved)
			p.retype("expiration-seconds", input)
			p.do(clickID("save"))
			p.waitTrue(`!document.getElementById('expiration-error').hidden`, "the inline error for "+input)
			msg := p.text("expiration-error")
			if !strings.Contains(msg, "expiration_seconds") || !strings.Contains(msg, "from 1 to 31536000") {
				t.Errorf("%q: inline error %q, want the field and its range", input, msg)
			}
			if got := eval[string](p, `document.getElementById('expiration-seconds').getAttribute('aria-invalid')`); got != "true" {
				t.Errorf("%q: aria-invalid %q, want true", input, got)
			}
			if got := eval[string](p, `document.getElementById('save-status').textContent`); got != "" {
				t.Errorf("%q: save status %q, want none", input, got)
			}
			p.do(chromedp.Reload())
			p.waitSettingsLoaded("admin", saved) // fails unless the value is unchanged
			t.Logf("%q: %s; after reload the value is %s", input, msg, saved)
		}
		if got := savedExpiration(t, s.Base); strconv.FormatInt(got, 10) != saved {
			t.Errorf("saved value after invalid input: got %d, want %s", got, saved)
		}
	})
}
