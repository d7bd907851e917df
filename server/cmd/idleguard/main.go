// Command idleguard serves a POS's inactivity sign-out: the login, the
// Developer Configuration JWT tab, the socket every POS page keeps open, and
// the idle clock that signs sessions out when their Expiration Time passes.
// It also manages the directory: idleguard user|group|session ...
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"idleguard/server/app"
)

func main() {
	app.TuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "idleguard:", err)
		os.Exit(1)
	}
}
