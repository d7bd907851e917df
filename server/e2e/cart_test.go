package e2e

import (
	"idleguard/server/app"
	"idleguard/server/internal/apptest"
	"reflect"
	"testing"
	"time"
)

// cartView is the sale on screen: product name and quantity per line, in
// order, and the total.
type cartView struct {
	Lines []string `json:"lines"`
	Total string   `json:"total"`
	// Restored: the "sale in progress was restored" note shows.
	Restored bool `json:"restored"`
}

const cartExpr = `(() => ({
	lines: Array.from(document.querySelectorAll('#cart li')).map(li =>
		li.firstElementChild.textContent + ' x' + li.querySelector('output').textContent),
	total: document.getElementById('cart-total').textContent,
	restored: !document.getElementById('cart-restored').hidden,
}))()`

// waitUser waits until the POS says who is signed in (the page has its
// session, and has restored a saved sale if there was one).
func (p *tab) waitUser(name string) {
	p.t.Helper()
	p.waitTrue(`document.getElementById('pos-user').textContent.startsWith(`+jsString(name)+` + ' (')`, "the POS to show "+name)
}

// A cashier signed out for inactivity with items in the cart finds the same
// sale after signing in again; another cashier signing in on that browser
// in between does not see it.
func TestE2ECartSurvivesSignOut(t *testing.T) {
	s := apptest.Start(t, app.RunReady)
	if out, err := apptest.RunCommand(t, app.RunReady, "cashier2-pass\n", "user", "add", "cashier2", "-group", "cashiers", "-data", s.Dir); err != nil {
		t.Fatalf("user add cashier2: %v (%s)", err, out)
	}
	apptest.SetExpiration(t, s.Base, 3)
	b := newE2EBrowser(t)

	pos := b.isolatedTab(t, "POS")
	pos.signIn(s.Base, "cashier", "demo")
	pos.waitUser("cashier")
	pos.do(clickID("product-espresso"), clickID("product-latte"), clickID("product-latte"))
	due := time.Now().Add(3 * time.Second) // the taps are the last input
	want := cartView{Lines: []string{"Espresso x1", "Caffè Latte x2"}, Total: "$10.90"}
	if got := eval[cartView](pos, cartExpr); !reflect.DeepEqual(got, want) {
		t.Fatalf("cart after three taps: got %+v, want %+v", got, want)
	}

	landed := waitSignedOut(t, due, pos)
	wantIdleReason(t, pos, landed[0], "3")
	// Long enough for the next sign-ins and checks.
	apptest.SetExpiration(t, s.Base, 600)

	pos.signInHere("cashier2", "cashier2-pass", "/pos")
	pos.waitUser("cashier2")
	if got := eval[cartView](pos, cartExpr); len(got.Lines) != 0 || got.Restored || got.Total != "$0.00" {
		t.Errorf("cashier2 on the same browser: got %+v, want an empty sale", got)
	}
	pos.do(clickID("signout"))
	pos.waitPath("/login")

	pos.signInHere("cashier", "demo", "/pos")
	pos.waitUser("cashier")
	want.Restored = true
	if got := eval[cartView](pos, cartExpr); !reflect.DeepEqual(got, want) {
		t.Errorf("cashier signed in again: got %+v, want the same sale %+v", got, want)
	}
}
