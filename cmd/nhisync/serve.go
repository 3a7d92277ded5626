package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/httpapi"
	"github.com/nhisync/nhisync/service"
)

// serveFlags are the flags of `nhisync serve`.
type serveFlags struct {
	addr      string
	logFormat string
	tlsCert   string
	tlsKey    string
	// lease is how long a replica's leases (feeds, passes) and claims on
	// queued writes last without renewal.
	lease time.Duration
	// fallback listens on another free port of the same host when addr
	// is taken (quickstart --serve).
	fallback bool
}

func (f *serveFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to serve the API, console and metrics on (port 0: any free port)")
	cmd.Flags().StringVar(&f.logFormat, "log-format", "", "log format on stderr: text or json (default: text on a terminal, json otherwise)")
	cmd.Flags().StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM), with --tls-key")
	cmd.Flags().StringVar(&f.tlsKey, "tls-key", "", "the certificate's private key (PEM)")
	cmd.Flags().DurationVar(&f.lease, "lease", 30*time.Second, "how long a replica's leases (feeds, passes) and claims on queued writes last unrenewed (replicas sharing a PostgreSQL store take a lost one's work over after it)")
}

func (f *serveFlags) check() error {
	if f.logFormat != "" && f.logFormat != "text" && f.logFormat != "json" {
		return usagef("--log-format must be text or json, not %q", f.logFormat)
	}
	if f.lease == 0 {
		f.lease = 30 * time.Second // quickstart --serve has no --lease
	}
	if f.lease < time.Second {
		return usagef("--lease %v: give at least 1s, e.g. --lease 30s", f.lease)
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usagef("give both --tls-cert and --tls-key, or neither")
	}
	if _, _, err := net.SplitHostPort(f.addr); err != nil {
		return usagef("--addr %q: want HOST:PORT, e.g. 127.0.0.1:8080", f.addr)
	}
	return nil
}

func serveCmd(g *globals) *cobra.Command {
	var fl serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--addr 127.0.0.1:8080]",
		Short: "Run continuously: feeds, polling, reconciliation, the API, the console and metrics",
		Long: `Run nhisync as a service on the same engine as sync: each system's feed
(file watch) or its poll interval starts a pass for what changed, a full
reconciliation runs every ` + "`reconcile`" + ` (default 1h), and queued writes retry
with backoff. The JSON API (/api/v1, described at /api/v1/openapi.json), the
web console (/), /healthz, /readyz and Prometheus /metrics are served on
--addr. Callers authenticate with tokens from ` + "`nhisync token create`" + `.
SIGTERM or SIGINT lets the pass in hand finish, releases the lease and exits 0.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := fl.check(); err != nil {
				return err
			}
			return serve(cmd.Context(), g, fl, nil)
		},
	}
	fl.add(cmd)
	return cmd
}

// newLogger logs to w as text on a terminal and JSON otherwise, unless
// format says which.
func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// openServing opens the app serve runs on and hands log to every
// connector that logs (nhisync.LogSetter), so what a connector logs goes
// where the service's own lines go, in their format.
func openServing(ctx context.Context, g *globals, log *slog.Logger) (*app, error) {
	a, err := g.open(ctx, true)
	if err != nil {
		return nil, err
	}
	for _, c := range a.conns {
		if s, ok := c.(nhisync.LogSetter); ok {
			s.SetLogger(log)
		}
	}
	return a, nil
}

// serve runs the service until ctx ends. ready, when set, is called with
// the address served once it listens (quickstart prints it).
func serve(ctx context.Context, g *globals, fl serveFlags, ready func(addr string)) error {
	log := newLogger(g.stderr, fl.logFormat)
	a, err := openServing(ctx, g, log)
	if err != nil {
		return err
	}
	defer a.Close()
	// Feeds and the API open no store or connector of their own: they use
	// the app's, through an engine that also reports to the metrics.
	metrics := httpapi.NewMetrics(a.cfg, a.store)
	// One engine runs pass after pass: it keeps the link heads a pass
	// loaded for the next, while no link head changes (WithHeadCache).
	eng := engine.New(a.cfg, a.store, a.conns, append(a.engineOpts[:len(a.engineOpts):len(a.engineOpts)],
		engine.WithLogger(log), engine.WithWriteObserver(metrics.ObserveWrite), engine.WithLeaseTTL(fl.lease),
		engine.WithHeadCache(engine.NewHeadCache()))...)
	if err := metrics.CountRecords(ctx); err != nil {
		return err
	}
	metrics.Refresh(ctx)
	svc := service.New(service.Options{Config: a.cfg, Engine: eng, Conns: a.conns, Store: a.store, Holder: holderName(), FeedLease: fl.lease, PassLease: fl.lease, Observer: metrics, Logger: log})
	srv, err := httpapi.New(httpapi.Options{
		Config: a.cfg, Store: a.store, Engine: eng, Exclusive: svc.Exclusive(),
		Passes: svc, Metrics: metrics, Logger: log,
		Console: httpapi.ConsoleOptions{TLS: fl.tlsCert != "", OIDC: a.cfg.Serve.OIDC, BaseURL: baseURL(fl)},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", fl.addr)
	if err != nil && fl.fallback {
		host, _, _ := net.SplitHostPort(fl.addr)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nhisync.Errorf(nhisync.EINVALID, "cannot listen on %s: %v; pick another --addr", fl.addr, err)
	}
	scheme := "http"
	if fl.tlsCert != "" {
		scheme = "https"
	}
	addr := ln.Addr().String()
	handler, err := withWebhooks(srv, a.conns)
	if err != nil {
		ln.Close()
		return err
	}
	hs := httpapi.NewHTTPServer(addr, handler, log)
	served := make(chan error, 1)
	go func() {
		var err error
		if fl.tlsCert != "" {
			err = hs.ServeTLS(ln, fl.tlsCert, fl.tlsKey)
		} else {
			err = hs.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		served <- err
	}()
	log.Info("serving", "url", scheme+"://"+addr, "config", a.cfg.Path, "systems", len(a.cfg.SystemNames), "reconcile", a.cfg.Reconcile.String())
	if ready != nil {
		ready(scheme + "://" + addr)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(runCtx) }()
	select {
	case <-ctx.Done():
	case err := <-served:
		// The listener failed (a bad TLS key, say): stop the service too.
		stopRun()
		<-ran
		if err != nil {
			return nhisync.Errorf(nhisync.EINVALID, "serving on %s failed: %v", addr, err)
		}
		return nil
	}
	log.Info("signal received: finishing the pass in hand")
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		log.Warn("HTTP shutdown cut short", "error", err)
	}
	if err := <-ran; err != nil {
		return err
	}
	<-served
	log.Info("stopped")
	return nil
}

// baseURL is the console's URL as people reach it, for the OIDC redirect
// when serve.oidc.redirect_url is not set.
func baseURL(fl serveFlags) string {
	scheme := "http"
	if fl.tlsCert != "" {
		scheme = "https"
	}
	return scheme + "://" + fl.addr
}
