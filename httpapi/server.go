// Package httpapi is the HTTP face of `nhisync serve` (SPEC §7): the JSON
// API under /api/v1, described by the OpenAPI 3 document it embeds and
// built from it (openapi.yaml is the route table: every operation names
// its handler and its least role), bearer-token authentication with roles,
// /healthz, /readyz, Prometheus /metrics, and the web console (html/template
// pages with htmx, every asset embedded).
//
// It adds transport and people, never rules: a person's decision calls the
// same engine function as the CLI (engine.ResolveConflict,
// DismissQuarantine, Approve, Reject) with the caller's token name as the
// actor, so separation of duties applies to it exactly as to `--as`.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// Limits of requests.
const (
	// MaxBodyBytes bounds a request body; a larger one is a 400.
	MaxBodyBytes = 64 << 10
	// DefaultLimit and MaxLimit bound a page of a list.
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Passes starts passes for POST /api/v1/sync: the service's loop.
type Passes interface {
	// StartPass queues a full pass and returns its id; asking again
	// before it starts returns the same id.
	StartPass(ctx context.Context) (string, error)
}

// Options configure a Server.
type Options struct {
	Config *nhisync.Config
	Store  nhisync.Store
	// Engine runs the human actions and explain.
	Engine *engine.Engine
	// Exclusive, when set, is held around every human action and the
	// drain that follows it, so they never overlap a pass of the service's
	// loop (which holds it too) and wait instead of failing.
	Exclusive sync.Locker
	Passes    Passes
	Metrics   *Metrics
	Logger    *slog.Logger
	// Console configures the web console (sessions, OIDC, TLS cookies).
	Console ConsoleOptions
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the API, health, metrics and console.
type Server struct {
	opt Options
	log *slog.Logger
	mux *http.ServeMux
	doc *document
	// filters caches compiled where filters.
	filters filterCache
}

// New builds the server; it fails when the embedded document and the
// handlers disagree (a documented operation without a handler, or a
// handler nobody documented), which a test holds at zero.
func New(opt Options) (*Server, error) {
	if opt.Config == nil || opt.Store == nil || opt.Engine == nil {
		return nil, errors.New("httpapi.New: Config, Store and Engine are required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(opt.Config, opt.Store)
	}
	s := &Server{opt: opt, log: opt.Logger, mux: http.NewServeMux()}
	doc, err := loadDocument()
	if err != nil {
		return nil, err
	}
	s.doc = doc
	if err := s.routeAPI(); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc.json)
	})
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, nhisync.Errorf(nhisync.ENOTFOUND, "no API route %s %s; see /api/v1/openapi.json", r.Method, r.URL.Path))
	})
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", opt.Metrics.Handler())
	c, err := newConsole(s, opt.Console)
	if err != nil {
		return nil, err
	}
	c.route(s.mux)
	return s, nil
}

// Metrics returns the server's metrics, for the service's loop to feed.
func (s *Server) Metrics() *Metrics { return s.opt.Metrics }

// ServeHTTP serves a request, turning a panic into a 500 with the error
// shape (the stack goes to the log, never to the caller).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving a request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			writeError(w, r, nhisync.Errorf(nhisync.EINTERNAL, "internal error"))
		}
	}()
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// NewHTTPServer wraps h in an http.Server with timeouts, so a slow or
// stalled client cannot hold connections open.
func NewHTTPServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the config is loaded and the store answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, _, err := s.opt.Store.AuditHead(ctx); err != nil {
		s.log.Warn("readyz: store unreachable", "err", err)
		writeError(w, r, nhisync.Errorf(nhisync.EUNAVAIL, "the store does not answer"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "config": s.opt.Config.Fingerprint})
}

// statusOf maps error codes to HTTP statuses: the one table of SPEC §7.
var statusOf = map[string]int{
	nhisync.EINVALID:   http.StatusBadRequest,
	codeUnauthorized:   http.StatusUnauthorized,
	nhisync.EFORBIDDEN: http.StatusForbidden,
	nhisync.ENOTFOUND:  http.StatusNotFound,
	nhisync.ECONFLICT:  http.StatusConflict,
	nhisync.EUNAVAIL:   http.StatusServiceUnavailable,
	nhisync.EINTERNAL:  http.StatusInternalServerError,
}

// codeUnauthorized is the API's code for a missing or unknown token.
const codeUnauthorized = "unauthorized"

// errorBody is the error shape of SPEC §7.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError writes err in the error shape. Internal errors show a generic
// message: their cause may name paths or drivers.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := nhisync.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		code, status = nhisync.EINTERNAL, http.StatusInternalServerError
	}
	var b errorBody
	b.Error.Code = code
	b.Error.Message = nhisync.ErrorMessage(err)
	if code == nhisync.EINTERNAL {
		b.Error.Message = "internal error; the server log has the cause"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nhisync"`)
	}
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// decodeBody reads a JSON object of at most MaxBodyBytes into v, refusing
// unknown keys and trailing data. Problems are EINVALID.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nhisync.Errorf(nhisync.EINVALID, "send the body as application/json, not %s", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return nhisync.Errorf(nhisync.EINVALID, "the body is larger than %d bytes", MaxBodyBytes)
		case errors.Is(err, io.EOF):
			return nhisync.Errorf(nhisync.EINVALID, "the body is empty; send a JSON object")
		default:
			return nhisync.Errorf(nhisync.EINVALID, "the body is not the JSON object expected: %v", err)
		}
	}
	if dec.More() {
		return nhisync.Errorf(nhisync.EINVALID, "the body holds more than one JSON value")
	}
	return nil
}

// drainBody refuses a body on an action that takes none, so a client that
// sends one by mistake learns it was not read.
func drainBody(w http.ResponseWriter, r *http.Request) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return nhisync.Errorf(nhisync.EINVALID, "the body is larger than %d bytes", MaxBodyBytes)
	}
	if s := strings.TrimSpace(string(b)); s != "" && s != "{}" {
		return nhisync.Errorf(nhisync.EINVALID, "this action takes no body (or {})")
	}
	return nil
}
