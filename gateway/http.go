package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// HTTP limits.
const (
	maxHeaderBytes    = 8 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	shutdownTimeout   = 10 * time.Second
)

// LookupRequest is the body of POST /v1/lookup. Domains and recipient
// addresses are answered in the order given, at most Config.MaxBatch in all.
type LookupRequest struct {
	Domains    []string `json:"domains"`
	Recipients []string `json:"recipients"` // only the part after the last '@' is used
}

// LookupResponse answers a LookupRequest, one Answer per item, in order.
// An item that is not a valid domain or address gets an Answer with Error set
// (and, for recipients, no domain: the address is never echoed).
type LookupResponse struct {
	Domains    []Answer `json:"domains"`
	Recipients []Answer `json:"recipients"`
}

// Batch request errors.
var (
	ErrBadRequest   = errors.New("gateway: malformed lookup request")
	ErrBatchTooLong = errors.New("gateway: too many items in lookup request")
)

// ParseLookupRequest decodes one JSON LookupRequest from r: a single object,
// no unknown fields, nothing after it, at most maxItems domains plus
// recipients. The caller bounds r's size. Errors wrap ErrBadRequest or
// ErrBatchTooLong and never quote the input.
func ParseLookupRequest(r io.Reader, maxItems int) (LookupRequest, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var req LookupRequest
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return LookupRequest{}, err
		}
		return LookupRequest{}, fmt.Errorf("%w: %s", ErrBadRequest, jsonErrorKind(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return LookupRequest{}, err
		}
		return LookupRequest{}, fmt.Errorf("%w: data after the request object", ErrBadRequest)
	}
	if len(req.Domains)+len(req.Recipients) > maxItems {
		return LookupRequest{}, fmt.Errorf("%w: more than %d items", ErrBatchTooLong, maxItems)
	}
	if len(req.Domains)+len(req.Recipients) == 0 {
		return LookupRequest{}, fmt.Errorf("%w: no domains or recipients", ErrBadRequest)
	}
	return req, nil
}

// jsonErrorKind describes a decoding error without quoting the input (an
// encoding/json error can contain a recipient address).
func jsonErrorKind(err error) string {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return "invalid JSON at offset " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "wrong JSON type for field " + strconv.Quote(te.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return "not a lookup request object"
}

// maxBodyBytes bounds a batch body: generous for MaxBatch quoted names.
func (s *Server) maxBodyBytes() int64 { return 4096 + int64(s.cfg.MaxBatch)*1024 }

// Handler returns the HTTP API:
//
//	GET  /v1/domains/{domain}       one Answer (?live=1: scan an unknown domain now)
//	GET  /v1/recipients/{address}   the Answer for the address's domain (?live=1 too)
//	POST /v1/lookup                 a LookupRequest -> LookupResponse
//	GET  /healthz                   200 once the cache is loaded, 503 before (lookups
//	                                are answered from the store meanwhile); "degraded"
//	                                (still 200) while refreshes fail: answers come
//	                                from memory, as old as age_seconds says
//	GET  /metrics                   Prometheus metrics
//
// A known path with another method answers 405 with Allow (RFC 9110
// §15.5.6), an unknown path 404. When Config.Token is set every request
// needs "Authorization: Bearer <token>".
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/domains/{domain}", s.instrument("domains", http.HandlerFunc(s.handleDomain)))
	mux.Handle("GET /v1/recipients/{address}", s.instrument("recipients", http.HandlerFunc(s.handleRecipient)))
	mux.Handle("POST /v1/lookup", s.instrument("lookup", http.HandlerFunc(s.handleBatch)))
	s.handleOps(mux)
	var h http.Handler = mux
	if len(s.cfg.Token) > 0 {
		h = s.authenticate(h)
	}
	return h
}

// OpsHandler serves only GET /healthz and GET /metrics, without the token
// even when Config.Token is set: for a listener of its own that health
// checkers and Prometheus reach without the gateway's secret (`serve
// --ops-listen`). Neither says anything about a domain or an address.
func (s *Server) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	s.handleOps(mux)
	return mux
}

// handleOps adds health, metrics and the fallback (404, or 405 with Allow).
func (s *Server) handleOps(mux *http.ServeMux) {
	mux.Handle("GET /healthz", s.instrument("healthz", http.HandlerFunc(s.handleHealth)))
	mux.Handle("GET /metrics", s.instrument("metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})))
	mux.Handle("/", s.instrument("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method not allowed; allowed: "+allow)
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint")
	})))
}

// allowedMethods lists the methods mux routes r's path with, other than
// through the "/" fallback: "" when none (an unknown path).
func allowedMethods(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// authenticate requires the bearer token. Both sides are hashed first so the
// constant-time comparison does not leak the token's length either.
func (s *Server) authenticate(next http.Handler) http.Handler {
	want := sha256.Sum256(s.cfg.Token)
	unauthorized := s.instrument("unauthorized", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tlsready"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const prefix = "Bearer "
		h := r.Header.Get("Authorization")
		ok := 0
		if len(h) > len(prefix) && h[:len(prefix)] == prefix {
			got := sha256.Sum256([]byte(h[len(prefix):]))
			ok = subtle.ConstantTimeCompare(got[:], want[:])
		}
		if ok != 1 {
			unauthorized.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = cmp.Or(w.code, code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.code = cmp.Or(w.code, http.StatusOK)
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(endpoint string, next http.Handler) http.Handler {
	dur := s.m.httpDuration.WithLabelValues(endpoint)
	ok := s.m.httpRequests.WithLabelValues(endpoint, "200")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		dur.Observe(time.Since(start).Seconds())
		if sw.code == 0 || sw.code == http.StatusOK {
			ok.Inc()
		} else {
			s.m.httpRequests.WithLabelValues(endpoint, strconv.Itoa(sw.code)).Inc()
		}
	})
}

func (s *Server) handleDomain(w http.ResponseWriter, r *http.Request) {
	d, err := NormalizeDomain(r.PathValue("domain"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid domain name")
		return
	}
	s.answerHTTP(w, r, d)
}

// handleRecipient uses only the address's domain; the address itself is
// never logged, stored, echoed or put in an error.
func (s *Server) handleRecipient(w http.ResponseWriter, r *http.Request) {
	d, err := DomainOfAddress(r.PathValue("address"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid recipient address")
		return
	}
	s.answerHTTP(w, r, d)
}

func (s *Server) answerHTTP(w http.ResponseWriter, r *http.Request, d string) {
	live := false
	if r.URL.RawQuery != "" {
		switch q := r.URL.Query().Get("live"); q {
		case "", "0", "false":
		case "1", "true":
			live = true
		default:
			writeError(w, http.StatusBadRequest, "live must be 1 or 0")
			return
		}
	}
	var (
		a   Answer
		err error
	)
	if live {
		a, err = s.liveAnswer(r.Context(), d)
	} else {
		a, err = s.answer(r.Context(), d, srcCache)
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) { // the domain only, never the address
		s.log.Debug("gateway lookup", "domain", d, "verdict", a.Verdict, "live", live, "err", err)
	}
	switch {
	case err == nil:
		s.countAnswer(srcHTTP, a.Policy)
		writeBody(w, http.StatusOK, a.appendJSON(make([]byte, 0, 384)))
	case errors.Is(err, ErrStore):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "cache loading and the store did not answer")
	case errors.Is(err, ErrLiveDisabled):
		writeError(w, http.StatusForbidden, "live checks are disabled")
	case errors.Is(err, ErrLiveRateLimited):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(1/s.cfg.LiveRate))))
		writeError(w, http.StatusTooManyRequests, "live check rate limit reached, try again later")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "live check timed out")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this.
		writeError(w, http.StatusServiceUnavailable, "request canceled")
	default:
		writeError(w, http.StatusBadGateway, "live check failed")
	}
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("live") {
		writeError(w, http.StatusBadRequest, "live checks are not available for batches")
		return
	}
	req, err := ParseLookupRequest(http.MaxBytesReader(w, r.Body, s.maxBodyBytes()), s.cfg.MaxBatch)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	case errors.Is(err, ErrBatchTooLong):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var resp LookupResponse
	resp.Domains, err = s.batchAnswers(r.Context(), req.Domains, NormalizeDomain, "invalid domain name")
	if err == nil {
		resp.Recipients, err = s.batchAnswers(r.Context(), req.Recipients, DomainOfAddress, "invalid recipient address")
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "cache loading and the store did not answer")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// batchAnswers answers each of ins (a batch's domains or recipients), read
// as a domain by domainOf; an input domainOf refuses is answered with
// invalid as its error. An error: the store did not answer.
func (s *Server) batchAnswers(ctx context.Context, ins []string, domainOf func(string) (string, error), invalid string) ([]Answer, error) {
	out := make([]Answer, 0, len(ins))
	for _, in := range ins {
		d, err := domainOf(in)
		if err != nil {
			out = append(out, Answer{Flags: []string{}, MX: []string{}, Error: invalid})
			continue
		}
		a, err := s.answer(ctx, d, srcBatch)
		if err != nil {
			return nil, err
		}
		s.countAnswer(srcHTTP, a.Policy)
		out = append(out, a)
	}
	return out, nil
}

// Health is the body of GET /healthz.
type Health struct {
	// Status: "ok"; "degraded" when the last refresh failed (the store is
	// unreachable: answers come from memory, still 200) or the answers
	// come from the cache file; "loading" (503) before the first cache
	// load; "no data" (503) when neither the store nor a cache file gave
	// any (the socketmap answers not found).
	Status      string    `json:"status"`
	Domains     int       `json:"domains"`
	DataVersion int64     `json:"data_version"`
	LoadedAt    time.Time `json:"loaded_at,omitzero"`   // the last load or update that changed the cache
	NewestScan  time.Time `json:"newest_scan,omitzero"` // the newest result in the cache
	// SyncedAt: the last successful refresh; the cache held all the store
	// had then. AgeSeconds is how long ago that was: how far the answers
	// may lag the store.
	SyncedAt   time.Time `json:"synced_at,omitzero"`
	AgeSeconds float64   `json:"age_seconds"`
	// RefreshFailed: the last refresh failed; RefreshFailures counts the
	// failures since the last success, LastFailure is the latest.
	RefreshFailed   bool      `json:"refresh_failed"`
	RefreshFailures int64     `json:"refresh_failures"`
	LastFailure     time.Time `json:"last_refresh_failure,omitzero"`
	Live            bool      `json:"live"`
	// FromCacheFile: the answers come from the cache file written before
	// this start (synced_at is the file's), not yet from the store.
	FromCacheFile bool `json:"from_cache_file"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	st := s.Status()
	t := s.snap.Load()
	h := Health{Status: "ok", SyncedAt: st.SyncedAt, AgeSeconds: st.Age.Seconds(),
		RefreshFailed: st.RefreshFailed, RefreshFailures: st.Failures, LastFailure: st.FailedAt, Live: s.cfg.Live != nil}
	h.FromCacheFile = st.FromCacheFile
	if t == nil {
		h.Status = "loading"
		if st.RefreshFailed {
			h.Status = "no data" // no store and no cache file: the socketmap answers not found
		}
		writeJSON(w, http.StatusServiceUnavailable, h)
		return
	}
	if st.RefreshFailed || st.FromCacheFile {
		h.Status = "degraded"
	}
	h.Domains, h.DataVersion, h.LoadedAt = t.len(), t.version, t.loadedAt
	if t.newest != 0 {
		h.NewestScan = time.Unix(0, t.newest).UTC()
	}
	writeJSON(w, http.StatusOK, h)
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	writeBody(w, code, b)
}

// writeBody writes a JSON body plus a newline (b's capacity is reused).
func writeBody(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// ServeAPI serves the HTTP API on l until ctx is done, then shuts down
// gracefully (in-flight requests get shutdownTimeout to finish) and returns
// nil. It bounds connections (MaxConns), header size and read time, and closes
// idle keep-alive connections after IdleTimeout.
func (s *Server) ServeAPI(ctx context.Context, l net.Listener) error {
	return s.serveHTTP(ctx, l, s.Handler())
}

// ServeOps serves OpsHandler (health and metrics, no token) on l until ctx
// is done, with ServeAPI's limits and shutdown.
func (s *Server) ServeOps(ctx context.Context, l net.Listener) error {
	return s.serveHTTP(ctx, l, s.OpsHandler())
}

func (s *Server) serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      s.cfg.LiveTimeout + readTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		done <- srv.Shutdown(sctx)
	})
	err := srv.Serve(netutil.LimitListener(l, s.cfg.MaxConns))
	if !errors.Is(err, http.ErrServerClosed) {
		stop()
		srv.Close()
		return fmt.Errorf("gateway: http: %w", err)
	}
	if err := <-done; err != nil {
		srv.Close()
		return fmt.Errorf("gateway: http shutdown: %w", err)
	}
	return nil
}
