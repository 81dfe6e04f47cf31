package gateway

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strings"
)

// ErrNotReady: the cache has not been loaded yet (Refresh).
var ErrNotReady = errors.New("gateway: the cache is not loaded yet")

// Policies calls fn, in domain order, with every domain the socketmap
// would answer OK for now (Config.Now) and its Postfix policy: the same
// records, pins and the same mapping (policy, the confirmation rule), so a
// static map written from it says what the socketmap says at that moment:
// an active pin's policy ("none" too) for a pinned domain, whether or not
// it was scanned. Stale records and verdicts without a policy are left
// out, as the socketmap's NOTFOUND. The cache
// must have been loaded (Refresh); ErrNotReady otherwise.
func (s *Server) Policies(fn func(domain, policy string) error) error {
	return s.eachPolicy(false, fn)
}

// eachPolicy is Policies; with all, it also calls fn with policy "" for
// every other domain in the cache (stale or without a policy).
func (s *Server) eachPolicy(all bool, fn func(domain, policy string) error) error {
	sn := s.snap.Load()
	if sn == nil || sn.base == nil {
		return ErrNotReady
	}
	now := s.cfg.Now()
	var names []string
	seen := map[string]bool{}
	for _, t := range []*table{sn.delta, sn.base} {
		t.each(func(e *entry) {
			if n := t.name(e); !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		})
	}
	for d := range sn.pins { // pinned domains the cache may not know
		if !seen[d] {
			seen[d] = true
			names = append(names, d)
		}
	}
	slices.Sort(names)
	for _, d := range names {
		rec, ok := s.get(d)
		_, pinned := s.pin(d, now)
		if !ok && !pinned {
			continue
		}
		p, _ := s.pinnedPolicy(d, rec, ok, now)
		if p == "" && !all {
			continue
		}
		if err := fn(d, p); err != nil {
			return err
		}
	}
	return nil
}

// WritePostfixMap writes the Postfix smtp_tls_policy_maps source of
// Policies: one "domain<TAB>policy" line per domain (A-labels, lower case),
// after the comment lines of header (each prefixed "# "). The file is
// usable as texthash:FILE or, after postmap, as lmdb:FILE (or hash:, cdb:).
// It returns the entries written.
func (s *Server) WritePostfixMap(w io.Writer, header []string) (int, error) {
	bw := bufio.NewWriter(w)
	for _, h := range header {
		for _, l := range strings.Split(h, "\n") {
			bw.WriteString(strings.TrimRight("# "+l, " ") + "\n")
		}
	}
	n := 0
	err := s.Policies(func(d, p string) error {
		// Both come from validated names (NormalizeDomain, stsMatchOf):
		// no whitespace or newline can reach the file.
		if strings.ContainsAny(d, " \t\r\n#") || strings.ContainsAny(p, "\t\r\n#") {
			return errors.New("gateway: a policy entry with a character a Postfix table cannot hold: " + d)
		}
		bw.WriteString(d)
		bw.WriteByte('\t')
		bw.WriteString(p)
		bw.WriteByte('\n')
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// Static map formats for MTAs that cannot query the socketmap.
const (
	FormatPostfix  = "postfix"
	FormatSendmail = "sendmail"
	FormatExim     = "exim"
)

// MapOptions tunes WriteMap.
type MapOptions struct {
	// SendmailDANEVerify maps dane-only to sendmail's VERIFY instead of
	// ENCR. Only right for a sendmail compiled with DANE and run with
	// "O DANE=true" (${verify} is then TRUSTED after a DANE match); any
	// other sendmail (Debian's among them) verifies a DANE host's
	// certificate against its CA list only, which a DANE-EE(3) server with
	// a self-signed certificate fails: its mail would be deferred.
	SendmailDANEVerify bool
}

// Sendmail access map right-hand sides (cf/README, "tls_rcpt"): a
// temporary error (TEMP+) when the requirement is not met, as Postfix
// defers; 128 bits excludes nothing a modern server negotiates (sendmail's
// own "secure" requirement is TEMP+VERIFY:128).
const (
	sendmailVerify  = "TEMP+VERIFY:128"
	sendmailEncrypt = "TEMP+ENCR:128"
	sendmailNone    = "OK" // no requirement; see WriteMap
)

// SendmailAccess is the RHS of a sendmail access map "TLS_Rcpt:domain"
// entry for a Postfix policy from Policies, "" for no entry (sendmail then
// uses STARTTLS opportunistically, as Postfix's "may"):
//
//   - dane-only -> TEMP+ENCR:128 (TEMP+VERIFY:128 with SendmailDANEVerify):
//     an access map cannot ask for DANE; encryption is what every DANE
//     server can give a sendmail without DANE
//   - secure (MTA-STS) and verify -> TEMP+VERIFY:128: the chain must verify
//     against sendmail's CA list; sendmail does not match the MX name
//     against the certificate and cannot apply MTA-STS mx patterns
//   - encrypt -> TEMP+ENCR:128
//   - may and anything else -> no entry
func SendmailAccess(policy string, o MapOptions) string {
	switch level, _, _ := strings.Cut(policy, " "); level {
	case PolicyDANEOnly:
		if o.SendmailDANEVerify {
			return sendmailVerify
		}
		return sendmailEncrypt
	case PolicySecure, PolicyVerify:
		return sendmailVerify
	case PolicyEncrypt:
		return sendmailEncrypt
	}
	return ""
}

// Exim lsearch values: the condition the exim.conf snippet in README tests.
const (
	EximDANE    = "dane"    // hosts_require_dane (and TLS)
	EximSecure  = "secure"  // MTA-STS: TLS with a verified certificate naming the MX host
	EximVerify  = "verify"  // TLS with a verified certificate naming the MX host
	EximEncrypt = "encrypt" // hosts_require_tls
)

// EximPolicy is the value of an Exim lsearch "domain: value" line for a
// Postfix policy from Policies, "" for no line: dane-only -> dane,
// secure -> secure, verify -> verify, encrypt -> encrypt, may -> none.
// Exim has no MTA-STS: secure is enforced as verify is (tls_verify_hosts,
// with tls_verify_cert_hostnames matching the MX host name), without the
// policy's mx patterns.
func EximPolicy(policy string) string {
	switch level, _, _ := strings.Cut(policy, " "); level {
	case PolicyDANEOnly:
		return EximDANE
	case PolicySecure:
		return EximSecure
	case PolicyVerify:
		return EximVerify
	case PolicyEncrypt:
		return EximEncrypt
	}
	return ""
}

// WriteMap writes the static map of Policies in format: FormatPostfix as
// WritePostfixMap; FormatSendmail an access map source for makemap
// ("TLS_Rcpt:domain<TAB>RHS", SendmailAccess); FormatExim an lsearch file
// ("domain: value", EximPolicy). Comment lines of header come first ("# ",
// which postmap, makemap and lsearch all skip); domains are A-labels in
// order; domains without an entry in the format are left out. It returns
// the entries written.
//
// sendmail looks TLS_Rcpt:domain up for the recipient's domain and then
// each parent domain in turn (cf/README, tls_rcpt; the "D" ruleset), where
// Postfix and Exim match the domain alone. So that a domain in the cache
// without a policy does not inherit a parent's requirement, it gets the
// entry "OK" (no requirement: TLS_connection accepts any RHS that is not a
// requirement) when a parent domain has an entry. A domain the cache does
// not know at all still inherits its parent's entry in sendmail.
func (s *Server) WriteMap(w io.Writer, format string, header []string, o MapOptions) (int, error) {
	var entries [][2]string // domain, value
	switch format {
	case FormatPostfix:
		return s.WritePostfixMap(w, header)
	case FormatSendmail:
		var none []string
		err := s.eachPolicy(true, func(d, p string) error {
			if v := SendmailAccess(p, o); v != "" {
				entries = append(entries, [2]string{d, v})
			} else {
				none = append(none, d)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		has := make(map[string]bool, len(entries))
		for _, e := range entries {
			has[e[0]] = true
		}
		n := len(entries)
		for _, d := range none {
			for p := d; ; {
				_, rest, ok := strings.Cut(p, ".")
				if !ok {
					break
				}
				if has[rest] {
					entries = append(entries, [2]string{d, sendmailNone})
					break
				}
				p = rest
			}
		}
		if len(entries) > n {
			slices.SortFunc(entries, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		}
	case FormatExim:
		err := s.Policies(func(d, p string) error {
			if v := EximPolicy(p); v != "" {
				entries = append(entries, [2]string{d, v})
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	default:
		return 0, errors.New("gateway: unknown map format " + format)
	}
	bw := bufio.NewWriter(w)
	for _, h := range header {
		for _, l := range strings.Split(h, "\n") {
			bw.WriteString(strings.TrimRight("# "+l, " ") + "\n")
		}
	}
	for _, e := range entries {
		// Domains come from validated names (NormalizeDomain): no white
		// space, colon or comment character can reach the file.
		if strings.ContainsAny(e[0], " \t\r\n#:") {
			return 0, errors.New("gateway: a policy entry with a character a map cannot hold: " + e[0])
		}
		if format == FormatSendmail {
			bw.WriteString("TLS_Rcpt:" + e[0] + "\t" + e[1] + "\n")
		} else {
			bw.WriteString(e[0] + ": " + e[1] + "\n")
		}
	}
	return len(entries), bw.Flush()
}
