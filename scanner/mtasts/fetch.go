package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

// Dialer dials TCP connections; *net.Dialer implements it. The scanner passes
// one that resolves host names through its own DNS resolver.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// FetchConfig controls Fetch. The zero value of every field has a documented
// default.
type FetchConfig struct {
	// Client, when set, is used for the request (a shallow copy whose
	// CheckRedirect refuses redirects); RootCAs, Dialer and Now are then
	// ignored, and the client's transport is responsible for verifying the
	// certificate. nil: a client is built from the fields below.
	Client *http.Client
	// RootCAs are the trusted roots; nil: the system roots.
	RootCAs *x509.CertPool
	// Port is the HTTPS port; 0: 443 (tests use other ports).
	Port int
	// Timeout bounds the whole fetch, including reading the body; 0: 30s.
	Timeout time.Duration
	// Dialer dials "mta-sts.<domain>:<port>"; nil: &net.Dialer{}.
	Dialer Dialer
	// Now is the certificate verification time; nil: time.Now.
	Now func() time.Time
	// UserAgent is sent in the User-Agent header; "": Go's default.
	UserAgent string
}

// Fetch failure reasons: stable kebab-case words in FetchError.Reason.
const (
	ReasonInvalidDomain = "invalid-domain" // the domain is not a valid host name
	ReasonConnect       = "connect"        // dial failed (refused, unreachable, name not resolved)
	ReasonTimeout       = "timeout"        // Timeout or the context deadline passed
	ReasonCanceled      = "canceled"       // the caller's context was canceled
	ReasonCertInvalid   = "cert-invalid"   // certificate not valid for mta-sts.<domain> (chain, expiry, name)
	ReasonTLS           = "tls-handshake"  // TLS failed for another reason (alert, protocol)
	ReasonRedirect      = "redirect"       // HTTP 3xx; RFC 8461 §3.3: redirects MUST NOT be followed
	ReasonHTTPStatus    = "http-status"    // HTTP status other than 200 and 3xx
	ReasonMediaType     = "media-type"     // Content-Type is not text/plain
	ReasonTooLarge      = "too-large"      // body larger than MaxPolicySize
	ReasonProtocol      = "protocol"       // malformed HTTP, connection closed mid-response, ...
	ReasonSyntax        = "syntax"         // the body is not a valid policy (ErrPolicySyntax)
)

// FetchError is the error of a failed Fetch. Use errors.As to get it and
// Reason to classify it; Err is the underlying cause (an x509 error for
// cert-invalid, the ParsePolicy error for syntax, ...). A FetchError also
// matches ErrPolicyFetch with errors.Is, or ErrPolicySyntax for a syntax
// failure, and additionally ErrNoPolicy when the server answered 404.
type FetchError struct {
	Reason     string
	StatusCode int // the HTTP status, when a response was received
	Err        error
}

func (e *FetchError) Error() string {
	msg := "mtasts: fetching policy: " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the sentinel the failure belongs to and the cause.
func (e *FetchError) Unwrap() []error {
	l := []error{ErrPolicyFetch}
	if e.Reason == ReasonSyntax {
		l = []error{ErrPolicySyntax}
	}
	if e.StatusCode == http.StatusNotFound {
		l = append(l, ErrNoPolicy)
	}
	if e.Err != nil {
		l = append(l, e.Err)
	}
	return l
}

// dialError marks an error that came from the dialer, so it can be told
// apart from TLS and HTTP failures.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// handshakeError marks an error from the TLS handshake.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// Fetch fetches and parses the policy of domain (A-label form; a trailing dot
// is ignored) from https://mta-sts.<domain>/.well-known/mta-sts.txt.
//
// RFC 8461 §3.3: the server certificate must chain to a trusted root, be
// within its validity period (at cfg.Now) and be valid for the host name
// "mta-sts.<domain>"; HTTP 3xx redirects are not followed but are errors;
// only HTTP 200 is accepted; the media type must be text/plain (parameters
// such as charset are allowed); no HTTP cache is used. The body is read up to
// MaxPolicySize bytes, more is an error and is not read; the whole fetch,
// body included, ends within cfg.Timeout even if the server trickles.
//
// It returns the parsed policy and the raw body. On a syntax error the body
// is returned too (with a nil policy), so callers can show what was served.
// Every error is a *FetchError.
func Fetch(ctx context.Context, cfg FetchConfig, domain string) (*Policy, []byte, error) {
	domain = dnsname.Key(domain)
	if !validDomain(domain) {
		return nil, nil, &FetchError{Reason: ReasonInvalidDomain, Err: errors.New("domain is not a valid host name")}
	}
	host := "mta-sts." + domain
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	client := cfg.client(host)
	if cfg.Client == nil {
		defer client.CloseIdleConnections()
	}

	url := "https://" + host
	if cfg.Port != 0 && cfg.Port != 443 {
		url += ":" + strconv.Itoa(cfg.Port)
	}
	url += "/.well-known/mta-sts.txt" // RFC 8461 §3.3
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, &FetchError{Reason: ReasonInvalidDomain, Err: err}
	}
	if cfg.UserAgent != "" {
		req.Header.Set("User-Agent", cfg.UserAgent)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, &FetchError{Reason: classify(ctx, err), Err: err}
	}
	defer resp.Body.Close() // without draining: a too-large body is not read further
	if err := ctx.Err(); err != nil {
		// The answer came as the time ran out (a server that answers only
		// when the client gives up, for one): the fetch did not finish in
		// time, whatever the status and type say.
		return nil, nil, &FetchError{Reason: classify(ctx, err), StatusCode: resp.StatusCode, Err: err}
	}

	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		// RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
		return nil, nil, &FetchError{Reason: ReasonRedirect, StatusCode: resp.StatusCode, Err: fmt.Errorf("http status %d", resp.StatusCode)}
	case resp.StatusCode != http.StatusOK:
		// RFC 8461 §3.3: "Senders ... MUST NOT use a policy ... not served with HTTP 200".
		return nil, nil, &FetchError{Reason: ReasonHTTPStatus, StatusCode: resp.StatusCode, Err: fmt.Errorf("http status %d", resp.StatusCode)}
	}
	// RFC 8461 §3.3: senders SHOULD validate the media type is "text/plain".
	ct := resp.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "text/plain" {
		if err == nil {
			err = fmt.Errorf("media type %q", mt)
		}
		return nil, nil, &FetchError{Reason: ReasonMediaType, StatusCode: resp.StatusCode, Err: err}
	}
	if resp.ContentLength > MaxPolicySize {
		return nil, nil, &FetchError{Reason: ReasonTooLarge, StatusCode: resp.StatusCode, Err: fmt.Errorf("%w: content-length %d", ErrPolicyTooLarge, resp.ContentLength)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err == nil && ctx.Err() != nil {
		// The deadline passed while reading: the transport may report a
		// clean end of a truncated body (the server can finish its chunked
		// response when it sees us go away), so never trust that body.
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, nil, &FetchError{Reason: classify(ctx, err), StatusCode: resp.StatusCode, Err: err}
	}
	if len(body) > MaxPolicySize {
		return nil, nil, &FetchError{Reason: ReasonTooLarge, StatusCode: resp.StatusCode, Err: ErrPolicyTooLarge}
	}
	p, err := ParsePolicy(body)
	if err != nil {
		return nil, body, &FetchError{Reason: ReasonSyntax, StatusCode: resp.StatusCode, Err: err}
	}
	return p, body, nil
}

// client returns the HTTP client for one fetch of host.
func (cfg FetchConfig) client(host string) *http.Client {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.Client != nil {
		c := *cfg.Client
		c.CheckRedirect = noRedirect
		return &c
	}
	var d Dialer = &net.Dialer{}
	if cfg.Dialer != nil {
		d = cfg.Dialer
	}
	tlsConfig := &tls.Config{
		RootCAs:    cfg.RootCAs,
		ServerName: host, // verified name and SNI: mta-sts.<domain>
		Time:       cfg.Now,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
	}
	tr := &http.Transport{
		Proxy: nil, // the connection must go to the host our resolver found
		// Dial and handshake here rather than in the transport, so dial and
		// TLS failures keep their types (the transport turns some TLS
		// errors into plain strings).
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &dialError{err}
			}
			tc := tls.Client(c, tlsConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, &handshakeError{err}
			}
			return tc, nil
		},
		DisableKeepAlives:      true, // one request per connection; close it when done
		DisableCompression:     true, // the 64 KiB bound applies to what is on the wire
		MaxResponseHeaderBytes: 32 << 10,
	}
	return &http.Client{Transport: tr, CheckRedirect: noRedirect}
}

// classify maps a request or body-read error to a Reason.
func classify(ctx context.Context, err error) string {
	var (
		cve *tls.CertificateVerificationError
		he  x509.HostnameError
		ua  x509.UnknownAuthorityError
		ci  x509.CertificateInvalidError
	)
	if errors.As(err, &cve) || errors.As(err, &he) || errors.As(err, &ua) || errors.As(err, &ci) {
		return ReasonCertInvalid
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ReasonTimeout
	}
	if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		return ReasonCanceled
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout
	}
	var de *dialError
	if errors.As(err, &de) {
		return ReasonConnect
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return ReasonConnect
	}
	var he2 *handshakeError
	var ae tls.AlertError
	var rhe tls.RecordHeaderError
	if errors.As(err, &he2) || errors.As(err, &ae) || errors.As(err, &rhe) {
		return ReasonTLS
	}
	return ReasonProtocol
}
