//go:build js && wasm

// Command wasm is idleguard's guard, the WebAssembly module every POS page
// loads through /idleguard.js. It reports the user's trusted input over one
// WebSocket per tab, shows the server's warning with a countdown, and signs
// the page out when the server (or, with the server unreachable, its own
// countdown) says so.
//
// The loader samples input in plain passive JS listeners; this module reads
// the sample on its own schedule, so no Go code runs per input event. The
// policy is Guard (guard.go, no syscall/js); browser.go and dialog.go are its
// hands in the page.
package main

import "syscall/js"

func main() {
	b, err := newBrowser()
	if err != nil {
		js.Global().Get("console").Call("error", "idleguard: "+err.Error())
		return
	}
	b.start()
	<-b.done // closed once signed out; every callback is released by then
}
