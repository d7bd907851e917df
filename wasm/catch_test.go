//go:build js && wasm

package main

import (
	"errors"
	"syscall/js"
	"testing"
)

// These run under Node (make test-wasm), where syscall/js is real.

func TestCatchReturnsJavaScriptExceptions(t *testing.T) {
	for _, c := range []struct {
		name, want string // want: the exception's constructor
		throw      func()
	}{
		// What Dial meets with a bad socket URL: a constructor that throws.
		{"New", "TypeError", func() { js.Global().Get("URL").New("not a url") }},
		{"Call", "SyntaxError", func() { js.Global().Get("JSON").Call("parse", "{") }},
		{"Invoke", "RangeError", func() { js.Global().Get("Array").Invoke(-1) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := catch(c.throw)
			var jsErr js.Error
			if !errors.As(err, &jsErr) {
				t.Fatalf("got %T %v, want a js.Error", err, err)
			}
			if got := jsErr.Get("name").String(); got != c.want {
				t.Errorf("got a %s (%v), want a %s", got, err, c.want)
			}
		})
	}
	if err := catch(func() {}); err != nil {
		t.Errorf("nothing thrown: got %v, want nil", err)
	}
}

func TestCatchPropagatesGoPanics(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name  string
		panic func()
		want  func(r any) bool
	}{
		{"string", func() { panic("boom") }, func(r any) bool { return r == "boom" }},
		// An error value is still a Go panic, not a JavaScript exception.
		{"error", func() { panic(boom) }, func(r any) bool { return r == boom }},
		// syscall/js's own complaint about a misused value is a bug in the module.
		{"js.ValueError", func() { js.ValueOf(1).Get("x") }, func(r any) bool {
			_, ok := r.(*js.ValueError)
			return ok
		}},
		{"nil map", func() {
			var m map[string]int
			m["x"] = 1
		}, func(r any) bool { _, ok := r.(error); return ok }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if r := recover(); !c.want(r) {
					t.Errorf("recovered %T %v, want the original panic", r, r)
				}
			}()
			err := catch(c.panic)
			t.Errorf("catch returned %v, want the panic to go on up", err)
		})
	}
}
