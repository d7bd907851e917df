//go:build js && wasm

package main

import "syscall/js"

// catch runs f and returns the JavaScript exception it threw, as a js.Error:
// a page that refuses a call (a bad socket URL, a navigation it blocks, a
// dialog already open) must not end the module. Any other panic is a bug in
// the module, not an answer from the page, so it goes on up (as coder/websocket's
// wasm wrapper does): that includes syscall/js's own *js.ValueError, raised
// when Go code uses a value as the wrong type.
func catch(f func()) (err error) {
	defer func() {
		r := recover()
		if e, ok := r.(js.Error); ok {
			err = e
			return
		}
		if r != nil {
			panic(r)
		}
	}()
	f()
	return nil
}
