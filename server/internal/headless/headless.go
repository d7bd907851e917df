// Package headless starts Debian's Chromium the way this project's browser
// tests and measurements need it: headless, sandbox off (root), no
// background networking (the machine's network is closed), a fresh profile.
package headless

import (
	"context"
	"errors"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// ErrMissing says how to get the browser.
var ErrMissing = errors.New("chromium is missing: apt-get install -y chromium")

// Path finds the chromium binary on PATH or where Debian puts it.
func Path() (string, error) {
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() {
		return "/usr/bin/chromium", nil
	}
	return "", ErrMissing
}

// Allocator starts a browser at exe with the profile in userDataDir. Not
// chromedp's defaults: those also stop the throttling of background tabs'
// timers, which a hidden POS tab must live with.
func Allocator(ctx context.Context, exe, userDataDir string, extra ...chromedp.ExecAllocatorOption) (context.Context, context.CancelFunc) {
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(userDataDir),
	}, extra...)
	return chromedp.NewExecAllocator(ctx, opts...)
}
