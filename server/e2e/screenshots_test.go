package e2e

import (
	"bytes"
	"context"
	"flag"
	"idleguard/server/app"
	"idleguard/server/internal/apptest"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// updateScreenshots writes the screenshots the README shows:
//
//	go test -count=1 -run E2EScreenshots ./server/e2e/ -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false, "write the end-to-end screenshots to docs/")

// screenshot captures the tab's viewport as docs/screenshot-<name>.png (in
// a temporary directory unless -update-screenshots).
func (p *tab) screenshot(dir, name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot %s: %v", p.name, name, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width < 800 || cfg.Height < 500 {
		p.t.Fatalf("%s: screenshot %s: got %dx%d (%v), want a whole page", p.name, name, cfg.Width, cfg.Height, err)
	}
	path := filepath.Join(dir, "screenshot-"+name+".png")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("%s: wrote %s (%dx%d)", p.name, path, cfg.Width, cfg.Height)
}

// The three screens of the README, taken along one real run: the admin
// saves 8 seconds, a cashier rings up a sale and walks away, the warning
// counts down, and the login page says why the cashier was signed out.
func TestE2EScreenshots(t *testing.T) {
	dir := t.TempDir()
	if *updateScreenshots {
		dir = filepath.Join("..", "..", "docs")
	}
	s := apptest.Start(t, app.RunReady)
	b := newE2EBrowser(t)

	admin := b.isolatedTab(t, "admin")
	admin.signIn(s.Base, "admin", "demo")
	admin.navigate(s.Base + "/admin")
	admin.waitSettingsLoaded("admin", "172800")
	admin.retype("expiration-seconds", "8")
	admin.do(clickID("save"))
	admin.waitTrue(`document.getElementById('save-status').textContent.includes('8 seconds')`, "the save confirmation")
	admin.waitTrue(`document.querySelectorAll('#changes li strong').length > 0`, "the list of changes")
	admin.do(chromedp.Blur(chromedp.ID("expiration-seconds"))) // no caret in the picture
	admin.screenshot(dir, "admin-jwt")

	cashier := b.isolatedTab(t, "cashier")
	cashier.signIn(s.Base, "cashier", "demo")
	cashier.waitUser("cashier")
	cashier.do(clickID("product-latte"), clickID("product-croissant"), clickID("product-latte"), clickID("product-juice"))
	cashier.waitGuard()
	due := time.Now().Add(8 * time.Second) // the taps are the last input
	// The warning comes 2 s before the deadline (a quarter of 8 s).
	cashier.waitTrue(warningOpenExpr, "the warning")
	if c := cashier.text("idleguard-countdown"); !strings.HasPrefix(c, "0:0") {
		t.Errorf("countdown %q, want seconds", c)
	}
	cashier.screenshot(dir, "pos-warning")

	got := waitSignedOut(t, due, cashier)
	wantIdleReason(t, cashier, got[0], "8")
	cashier.screenshot(dir, "login")
}
