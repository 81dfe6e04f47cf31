// Package result holds the typed outcome of a scan: the ten domain verdicts of
// docs/verdicts.md (a public contract), their flags, and the per-MX-host and per-IP
// facts behind them. Every other package (store, report, gateway) speaks these
// types; this package imports nothing of ours.
package result

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Verdict is one of the ten domain verdicts of docs/verdicts.md, ordered best to worst.
type Verdict string

// The verdicts, exactly as docs/verdicts.md spells them.
const (
	DANE        Verdict = "dane"
	MTASTS      Verdict = "mta-sts"
	Verified    Verdict = "verified"
	Encrypted   Verdict = "encrypted"
	Partial     Verdict = "partial"
	Plaintext   Verdict = "plaintext"
	Broken      Verdict = "broken"
	NoMail      Verdict = "no-mail"
	Unreachable Verdict = "unreachable"
	DNSError    Verdict = "dns-error"

	// Unknown is not a verdict: it is the answer for a domain the cache has
	// no (fresh) result for.
	Unknown Verdict = "unknown"
)

// Verdicts lists the ten verdicts from best to worst.
var Verdicts = []Verdict{DANE, MTASTS, Verified, Encrypted, Partial, Plaintext, Broken, NoMail, Unreachable, DNSError}

// Rank is the verdict's position in Verdicts (0 best), or len(Verdicts) for Unknown.
func (v Verdict) Rank() int {
	if i := slices.Index(Verdicts, v); i >= 0 {
		return i
	}
	return len(Verdicts)
}

// Valid reports whether v is one of the ten verdicts.
func (v Verdict) Valid() bool { return slices.Contains(Verdicts, v) }

// Temporary reports whether the verdict says the TLS state is unknown and must
// be retried on the next run (it is not a statement about the domain's TLS).
func (v Verdict) Temporary() bool { return v == Unreachable || v == DNSError }

// ParseVerdict parses an exact verdict word.
func ParseVerdict(s string) (Verdict, error) {
	v := Verdict(s)
	if !v.Valid() {
		return "", fmt.Errorf("result: unknown verdict %q", s)
	}
	return v, nil
}

// Flags: short kebab-case words that say why. The list is open; these are the
// ones the scanner sets.
const (
	FlagCertExpired      = "cert-expired"
	FlagCertNotYetValid  = "cert-not-yet-valid"
	FlagCertSelfSigned   = "cert-self-signed"
	FlagCertNameMismatch = "cert-name-mismatch"
	FlagCertUntrusted    = "cert-untrusted"
	FlagTLS10            = "tls-1.0"
	FlagTLS11            = "tls-1.1"
	FlagNoSTARTTLS       = "starttls-not-offered"
	FlagSTARTTLSRefused  = "starttls-refused" // 4xx/5xx to STARTTLS
	FlagHandshakeFailed  = "tls-handshake-failed"
	FlagBannerRefused    = "banner-refused"      // 4xx/5xx banner
	FlagEHLORefused      = "ehlo-refused"        // 220 banner, then 4xx/5xx to EHLO and HELO
	FlagProtocolError    = "smtp-protocol-error" // a reply that is not SMTP (garbled, unexpected code) or a connection lost mid-dialogue, other than before the EHLO reply
	FlagEHLOLost         = "ehlo-lost"           // 220 banner, then the connection was lost, timed out or garbled before the EHLO/HELO reply
	FlagRetriedLater     = "retried-later"       // a 4xx at banner/EHLO was tried again later in the run (greylisting, rate limits)
	FlagSNIPerName       = "sni-per-name"        // the IP's server picks its certificate by SNI: judged on a probe with this host's own name
	FlagTLSFallback      = "tls-fallback-stack"
	FlagTLSNotJudged     = "tls-not-judged"
	FlagIPv6NotProbed    = "ipv6-not-probed" // MX host with only IPv6 addresses while IPv6 probing is off
	FlagConnectFailed    = "connect-failed"
	FlagTimeout          = "timeout"
	FlagImplicitMX       = "implicit-mx"
	FlagNullMX           = "null-mx"
	FlagNXDomain         = "nxdomain"
	FlagMXCNAME          = "mx-cname"
	FlagMXDangling       = "mx-dangling"        // MX host with no A/AAAA (or NXDOMAIN)
	FlagMXIPLiteral      = "mx-ip-literal"      // MX target is an IP address literal
	FlagMXPrivate        = "mx-private-address" // MX IP skipped: loopback/private/reserved
	FlagMXTruncated      = "mx-capped"          // more MX hosts or IPs than the caps; rest not probed
	FlagServfail         = "dns-servfail"
	FlagDNSTimeout       = "dns-timeout"
	FlagSTSTesting       = "sts-testing"
	FlagSTSNone          = "sts-none"
	FlagSTSFetchFailed   = "sts-fetch-failed"
	FlagSTSInvalid       = "sts-invalid"
	FlagSTSRecordInvalid = "sts-record-invalid"
	FlagSTSMXMismatch    = "sts-mx-mismatch"
	FlagSTSCertInvalid   = "sts-cert-invalid"
	FlagSTSLookupFailed  = "sts-lookup-failed" // the _mta-sts TXT lookup failed (SERVFAIL, timeout)
	FlagSTSCached        = "sts-cached"        // a cached policy within its max_age applied, the live one being absent or unavailable (RFC 8461 §5.1)
	FlagTLSAInsecure     = "tlsa-insecure"
	FlagTLSAUnusable     = "tlsa-unusable"
	FlagTLSAServfail     = "tlsa-servfail"
	FlagDANEMismatch     = "dane-mismatch"
	FlagNoTLSRPT         = "no-tlsrpt"
	FlagTLSRPTLookupFail = "tlsrpt-lookup-failed" // the _smtp._tls TXT lookup failed (SERVFAIL, timeout)
)

// AllFlags lists every flag the scanner sets, in the order above (the
// glossary of docs/verdicts.md and the reports' meanings cover each).
var AllFlags = []string{
	FlagCertExpired, FlagCertNotYetValid, FlagCertSelfSigned,
	FlagCertNameMismatch, FlagCertUntrusted, FlagTLS10, FlagTLS11,
	FlagNoSTARTTLS, FlagSTARTTLSRefused, FlagHandshakeFailed,
	FlagBannerRefused, FlagEHLORefused, FlagProtocolError, FlagEHLOLost,
	FlagRetriedLater, FlagSNIPerName, FlagTLSFallback, FlagTLSNotJudged,
	FlagIPv6NotProbed, FlagConnectFailed, FlagTimeout, FlagImplicitMX,
	FlagNullMX, FlagNXDomain, FlagMXCNAME, FlagMXDangling, FlagMXIPLiteral,
	FlagMXPrivate, FlagMXTruncated, FlagServfail, FlagDNSTimeout,
	FlagSTSTesting, FlagSTSNone, FlagSTSFetchFailed, FlagSTSInvalid,
	FlagSTSRecordInvalid, FlagSTSMXMismatch, FlagSTSCertInvalid,
	FlagSTSLookupFailed, FlagSTSCached, FlagTLSAInsecure, FlagTLSAUnusable,
	FlagTLSAServfail, FlagDANEMismatch, FlagNoTLSRPT, FlagTLSRPTLookupFail,
}

// Result is the outcome of one domain, as stored and as answered by lookup,
// the HTTP API and the gateway map.
type Result struct {
	Domain    string    `json:"domain"`                   // A-label form, lower case, no trailing dot
	Unicode   string    `json:"domain_unicode,omitempty"` // U-label form when it differs
	Verdict   Verdict   `json:"verdict"`
	Flags     []string  `json:"flags"` // sorted, unique
	ScannedAt time.Time `json:"scanned_at"`
	RunID     int64     `json:"run_id,omitempty"`
	Reason    string    `json:"reason,omitempty"` // one line for humans: why this verdict
	// DNS facts.
	ImplicitMX bool   `json:"implicit_mx,omitempty"`
	NullMX     bool   `json:"null_mx,omitempty"`
	MXSecure   bool   `json:"mx_secure,omitempty"`  // MX RRset DNSSEC-secure (trusted AD bit)
	DNSStatus  string `json:"dns_status,omitempty"` // ok, nxdomain, servfail, timeout, ...
	MX         []Host `json:"mx"`
	// Policy layer (nil when not looked at).
	MTASTS *STSPolicy `json:"mta_sts,omitempty"`
	TLSRPT *TLSRPT    `json:"tlsrpt,omitempty"`
	// Duration of the domain's scan (DNS and waiting for shared probes).
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// Host is one MX host of a domain.
type Host struct {
	Name       string   `json:"name"` // as in the MX record, A-label, no trailing dot
	Preference uint16   `json:"preference"`
	CNAME      string   `json:"cname,omitempty"`  // final target when the name is an alias
	Secure     bool     `json:"secure,omitempty"` // address RRset DNSSEC-secure
	DNSStatus  string   `json:"dns_status,omitempty"`
	Flags      []string `json:"flags,omitempty"`
	TLSA       *TLSA    `json:"tlsa,omitempty"`
	Addrs      []Addr   `json:"addrs"`
}

// Addr is one IP of an MX host: the shared probe of that IP plus the
// host-specific judgement of its certificate (the name check and DANE depend
// on the host name, the probe does not).
type Addr struct {
	IP    netip.Addr `json:"ip"`
	Probe *Probe     `json:"probe,omitempty"` // nil when not probed (skipped)
	// Host-specific facts, filled by the scanner.
	Skipped   string `json:"skipped,omitempty"` // why not probed, e.g. "private-address", "capped"
	NameMatch bool   `json:"name_match,omitempty"`
	PKIXValid bool   `json:"pkix_valid,omitempty"` // chain valid AND names this host
	DANEMatch *bool  `json:"dane_match,omitempty"` // nil when DANE not evaluated
	// DANENameOnly: the chain matched a DANE-TA record but names neither the
	// MX host nor its CNAME target; the recipient domain may still match
	// (RFC 7672 §3.2.2). Scanner bookkeeping, not serialised.
	DANENameOnly bool     `json:"-"`
	Flags        []string `json:"flags,omitempty"`
}

// ProbeStatus says how far a probe of one IP got.
type ProbeStatus string

const (
	ProbeOK              ProbeStatus = "ok"             // STARTTLS completed
	ProbeConnectFailed   ProbeStatus = "connect-failed" // refused, unreachable, dial timeout
	ProbeTimeout         ProbeStatus = "timeout"        // connected, then a deadline passed (no banner, ...)
	ProbeBannerRefused   ProbeStatus = "banner-refused" // 4xx/5xx banner
	ProbeEHLORefused     ProbeStatus = "ehlo-refused"   // 220 banner, then 4xx/5xx to EHLO (and HELO)
	ProbeProtocolError   ProbeStatus = "protocol-error" // garbage, overlong reply, closed mid-dialogue before STARTTLS
	ProbeNoSTARTTLS      ProbeStatus = "starttls-not-offered"
	ProbeSTARTTLSRefused ProbeStatus = "starttls-refused" // reply to STARTTLS was not 220
	ProbeHandshakeFailed ProbeStatus = "tls-handshake-failed"
	// ProbeNotJudged: the handshake failed in a way neither TLS stack can
	// tell apart from one an OpenSSL-based sender would complete; not a
	// statement that STARTTLS fails.
	ProbeNotJudged ProbeStatus = "tls-not-judged"
)

// Reachable reports whether the status implies the server answered EHLO (or
// HELO) with 250 after a 220 banner, as a sender needs before it can send
// (docs/verdicts.md). A protocol error may happen before or after that point:
// Probe.Reachable says which.
func (s ProbeStatus) Reachable() bool {
	switch s {
	case ProbeOK, ProbeNoSTARTTLS, ProbeSTARTTLSRefused, ProbeHandshakeFailed, ProbeNotJudged:
		return true
	}
	return false
}

// Probe is the outcome of probing one MX IP, filled as far as the probe got.
// One IP is probed once per run however many hosts and domains share it.
type Probe struct {
	IP              netip.Addr    `json:"ip"`
	SNI             string        `json:"sni,omitempty"` // the host name sent as SNI
	Status          ProbeStatus   `json:"status"`
	Reachable       bool          `json:"reachable"`        // 220 banner, then 250 to EHLO or HELO on the same connection
	Banner          string        `json:"banner,omitempty"` // first banner line, bounded
	BannerCode      int           `json:"banner_code,omitempty"`
	EHLOCode        int           `json:"ehlo_code,omitempty"` // reply code to EHLO (or to HELO after a 5xx to EHLO)
	EHLO            []string      `json:"ehlo,omitempty"`      // extension keywords (upper case)
	STARTTLSOffered bool          `json:"starttls_offered"`
	STARTTLSReply   string        `json:"starttls_reply,omitempty"`
	TLS             *TLSInfo      `json:"tls,omitempty"` // nil when no handshake completed
	Error           string        `json:"error,omitempty"`
	Alert           string        `json:"tls_alert,omitempty"` // TLS alert on handshake failure
	Retried         bool          `json:"retried,omitempty"`   // a second attempt was made
	Attempts        int           `json:"attempts,omitempty"`  // temporary refusals tried again later in the run: 1 + retries
	StartedAt       time.Time     `json:"started_at"`
	Duration        time.Duration `json:"duration_ns"`
}

// TLSInfo describes a completed handshake and the presented chain, judged
// independently of any host name.
type TLSInfo struct {
	Version     string `json:"version"` // "TLS 1.3"
	VersionID   uint16 `json:"version_id"`
	CipherSuite string `json:"cipher_suite"`
	Legacy      bool   `json:"legacy_retry,omitempty"` // only the second attempt (on Stack) worked
	// Stack is the TLS implementation that completed the handshake: "" is
	// Go's crypto/tls; StackFallback the second, OpenSSL-compatible one.
	Stack string `json:"stack,omitempty"`
	// Chain validity against the trusted roots, ignoring the host name.
	ChainTrusted bool       `json:"chain_trusted"` // chains to a trusted root (at a time the leaf is valid)
	Expired      bool       `json:"expired"`       // leaf (or chain) outside its validity now
	NotYetValid  bool       `json:"not_yet_valid,omitempty"`
	SelfSigned   bool       `json:"self_signed"`
	ChainError   string     `json:"chain_error,omitempty"`
	Certs        []CertInfo `json:"certs"` // as presented, leaf first
	// The parsed chain, for the host-name check and DANE; not serialised.
	Raw [][]byte `json:"-"`
	// AllNames is the leaf's full list of DNS names when Certs[0].DNSNames
	// had to be truncated for storage; nil otherwise. Not serialised: name
	// checks use it so a truncated list never decides a verdict.
	AllNames []string `json:"-"`
}

// StackFallback names the second TLS implementation in TLSInfo.Stack.
const StackFallback = "zcrypto"

// TempRefused reports whether the probe ended on a temporary (4xx) refusal
// of the banner or of EHLO: greylisting or a rate limit, worth trying again
// later in the run.
func (p *Probe) TempRefused() bool {
	switch p.Status {
	case ProbeBannerRefused:
		return p.BannerCode >= 400 && p.BannerCode < 500
	case ProbeEHLORefused:
		return p.EHLOCode >= 400 && p.EHLOCode < 500
	}
	return false
}

// CertInfo summarises one certificate.
type CertInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	DNSNames  []string  `json:"dns_names,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	SHA256    string    `json:"sha256"` // hex of the DER
	KeyType   string    `json:"key_type,omitempty"`
}

// STSPolicy is the MTA-STS state of a domain (RFC 8461).
type STSPolicy struct {
	RecordID  string    `json:"record_id,omitempty"` // TXT id=
	Mode      string    `json:"mode,omitempty"`      // enforce, testing, none ("" when no policy)
	MX        []string  `json:"mx,omitempty"`        // policy mx patterns
	MaxAge    int64     `json:"max_age,omitempty"`
	FetchedAt time.Time `json:"fetched_at,omitempty"`
	Error     string    `json:"error,omitempty"` // why absent/invalid
}

// TLSA is the TLSA RRset of an MX host (RFC 7672).
type TLSA struct {
	Name    string       `json:"name"` // _25._tcp.<base>
	Secure  bool         `json:"secure"`
	Status  string       `json:"status"` // ok, nodata, nxdomain, servfail, ...
	Records []TLSARecord `json:"records,omitempty"`
}

// TLSARecord is one TLSA record.
type TLSARecord struct {
	Usage        uint8  `json:"usage"`
	Selector     uint8  `json:"selector"`
	MatchingType uint8  `json:"matching_type"`
	Data         string `json:"data"` // hex
}

// TLSRPT is the TLS reporting record of a domain (RFC 8460).
type TLSRPT struct {
	RUA   []string `json:"rua,omitempty"`
	Error string   `json:"error,omitempty"`
}

// AddFlag adds f to a sorted unique flag list.
func AddFlag(flags []string, f ...string) []string {
	for _, x := range f {
		i, found := slices.BinarySearch(flags, x)
		if !found {
			flags = slices.Insert(flags, i, x)
		}
	}
	return flags
}
