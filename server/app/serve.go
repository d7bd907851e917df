package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"idleguard/server/token"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

func serve(ctx context.Context, o options, stdout io.Writer) error {
	log := newLogger(stdout, o.logLevel)
	a, err := newApp(ctx, o, log)
	if err != nil {
		return err
	}
	defer a.db.Close()
	if a.layer != nil {
		// After the service's Run has returned (below): it uses the layer
		// to the end.
		defer a.layer.Close()
	}
	svc, h := a.svc, a.hub
	if o.debugAddr != "" {
		stopDebug, err := startDebug(log, o.debugAddr, h, svc)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	var tlsConfig *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http://"
	if tlsConfig != nil {
		// The hub reads frames off the TLS connection (read.go), so the
		// listener itself speaks TLS rather than http.Server.ServeTLS.
		ln, scheme = tls.NewListener(ln, tlsConfig), "https://"
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", scheme+ln.Addr().String(), "data", o.dataDir, "demo", o.demo)
	if o.ready != nil {
		o.ready(ln.Addr().String())
	}

	flushCtx, stopFlush := context.WithCancel(context.Background())
	flushed := make(chan error, 1)
	go func() { flushed <- svc.Run(flushCtx) }()
	keysDone := make(chan struct{})
	go func() {
		defer close(keysDone)
		if a.keys != nil {
			a.keys.Run(flushCtx, token.ReloadInterval, log)
		}
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served:
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stop taking requests, tell open pages "going away" (they reconnect
	// to whichever server comes next), then write the last activity.
	srv.Shutdown(shutdownCtx)
	h.Shutdown(shutdownCtx)
	stopFlush()
	if ferr := <-flushed; ferr != nil {
		log.Error("final flush", "err", ferr)
	}
	<-keysDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("stopped")
	return err
}
