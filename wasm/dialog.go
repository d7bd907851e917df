//go:build js && wasm

package main

import "syscall/js"

// warningDialog is the warning, a modal <dialog> built on first use:
//
//	<dialog id="idleguard-warning" role="alertdialog" aria-modal="true"
//	        aria-labelledby="idleguard-title" aria-describedby="idleguard-message">
//	  <h2 id="idleguard-title">Are you still there?</h2>
//	  <p id="idleguard-message">You will be signed out in
//	    <strong id="idleguard-countdown">0:27</strong> because there has been no activity.</p>
//	  <div class="idleguard-actions">
//	    <button id="idleguard-stay">Stay signed in</button>
//	    <button id="idleguard-signout">Sign out now</button>
//	  </div>
//	</dialog>
//
// It is open exactly when it has the open attribute. Focus moves to "Stay
// signed in" and returns where it was on close; Tab cycles between the two
// buttons; Escape is "Stay signed in".
type warningDialog struct {
	document                     js.Value
	el, countdown, stay, signOut js.Value
	built, open                  bool
	text                         string   // the countdown as shown
	returnFocus                  js.Value // the element focused before the dialog opened

	onStay, onSignOut        func()
	onKey, onClick, onCancel js.Func
}

func (d *warningDialog) init(onStay, onSignOut func()) {
	d.onStay, d.onSignOut = onStay, onSignOut
	d.onKey = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ev := args[0]
		switch ev.Get("key").String() {
		case "Escape":
			ev.Call("preventDefault")
			d.onStay()
		case "Tab":
			ev.Call("preventDefault")
			if d.document.Get("activeElement").Equal(d.stay) {
				d.signOut.Call("focus")
			} else {
				d.stay.Call("focus")
			}
		}
		return nil
	})
	d.onClick = js.FuncOf(func(_ js.Value, args []js.Value) any {
		switch args[0].Get("target").Get("id").String() {
		case "idleguard-stay":
			d.onStay()
		case "idleguard-signout":
			d.onSignOut()
		}
		return nil
	})
	// The browser's own close request (Escape it saw first, Android's back).
	d.onCancel = js.FuncOf(func(_ js.Value, args []js.Value) any {
		args[0].Call("preventDefault")
		d.onStay()
		return nil
	})
}

func (d *warningDialog) build() {
	doc := d.document
	el := d.element("dialog", "idleguard-warning", "")
	el.Call("setAttribute", "role", "alertdialog")
	el.Call("setAttribute", "aria-modal", "true")
	el.Call("setAttribute", "aria-labelledby", "idleguard-title")
	el.Call("setAttribute", "aria-describedby", "idleguard-message")
	el.Call("appendChild", d.element("h2", "idleguard-title", WarningTitle))
	msg := d.element("p", "idleguard-message", "")
	msg.Call("appendChild", doc.Call("createTextNode", WarningBefore))
	d.countdown = d.element("strong", "idleguard-countdown", "")
	msg.Call("appendChild", d.countdown)
	msg.Call("appendChild", doc.Call("createTextNode", WarningAfter))
	el.Call("appendChild", msg)
	actions := d.element("div", "", "")
	actions.Set("className", "idleguard-actions")
	d.stay = d.element("button", "idleguard-stay", StayLabel)
	d.signOut = d.element("button", "idleguard-signout", SignOutLabel)
	actions.Call("appendChild", d.stay)
	actions.Call("appendChild", d.signOut)
	el.Call("appendChild", actions)
	el.Call("addEventListener", "keydown", d.onKey)
	el.Call("addEventListener", "click", d.onClick)
	el.Call("addEventListener", "cancel", d.onCancel)
	d.el, d.built = el, true
}

func (d *warningDialog) element(tag, id, text string) js.Value {
	el := d.document.Call("createElement", tag)
	if id != "" {
		el.Set("id", id)
	}
	if tag == "button" {
		el.Set("type", "button")
	}
	if text != "" {
		el.Set("textContent", text)
	}
	return el
}

// show opens the dialog, or updates its countdown.
func (d *warningDialog) show(remainingMs int64) {
	if !d.built {
		d.build()
	}
	if text := Countdown(remainingMs); text != d.text {
		d.countdown.Set("textContent", text)
		d.text = text
	}
	if d.open {
		return
	}
	if !d.el.Get("isConnected").Bool() {
		d.document.Get("body").Call("appendChild", d.el)
	}
	d.open = true
	d.returnFocus = d.document.Get("activeElement")
	if d.el.Get("showModal").Type() != js.TypeFunction || catch(func() { d.el.Call("showModal") }) != nil {
		d.el.Call("setAttribute", "open", "")
	}
	d.stay.Call("focus")
}

func (d *warningDialog) hide() {
	if !d.open {
		return
	}
	d.open = false
	if d.el.Get("close").Type() != js.TypeFunction || catch(func() { d.el.Call("close") }) != nil {
		d.el.Call("removeAttribute", "open")
	}
	if f := d.returnFocus; f.Type() == js.TypeObject && f.Get("isConnected").Bool() &&
		f.Get("focus").Type() == js.TypeFunction {
		f.Call("focus", map[string]any{"preventScroll": true})
	}
	d.returnFocus = js.Null()
}

func (d *warningDialog) release() {
	if d.built {
		d.el.Call("removeEventListener", "keydown", d.onKey)
		d.el.Call("removeEventListener", "click", d.onClick)
		d.el.Call("removeEventListener", "cancel", d.onCancel)
	}
	d.onKey.Release()
	d.onClick.Release()
	d.onCancel.Release()
}
