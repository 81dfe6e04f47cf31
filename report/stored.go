package report

import (
	"net/netip"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// storedResult is the part of a stored result.Result (its JSON) that the
// CSV and JSON exports read, with the same JSON names. encoding/json skips
// the rest (banners, EHLO keywords, probe times, certificate details beyond
// the leaf's subject, issuer and expiry), which makes decoding a result
// several times cheaper than into result.Result: at a million domains the
// decoding is most of an export's time. TestStoredResultMirrorsResult keeps
// the names and types in step with result.Result.
type storedResult struct {
	Unicode   string         `json:"domain_unicode"`
	Verdict   result.Verdict `json:"verdict"`
	Flags     []string       `json:"flags"`
	ScannedAt time.Time      `json:"scanned_at"`
	Reason    string         `json:"reason"`
	MXSecure  bool           `json:"mx_secure"`
	MX        []storedHost   `json:"mx"`
	MTASTS    *storedSTS     `json:"mta_sts"`
}

type storedSTS struct {
	Mode string `json:"mode"`
}

type storedHost struct {
	Name       string       `json:"name"`
	Preference uint16       `json:"preference"`
	Secure     bool         `json:"secure"`
	Flags      []string     `json:"flags"`
	TLSA       *storedTLSA  `json:"tlsa"`
	Addrs      []storedAddr `json:"addrs"`
}

type storedTLSA struct {
	Secure  bool       `json:"secure"`
	Status  string     `json:"status"`
	Records []struct{} `json:"records"` // only counted
}

type storedAddr struct {
	IP        netip.Addr   `json:"ip"`
	Probe     *storedProbe `json:"probe"`
	Skipped   string       `json:"skipped"`
	PKIXValid bool         `json:"pkix_valid"`
	DANEMatch *bool        `json:"dane_match"`
	Flags     []string     `json:"flags"`
}

type storedProbe struct {
	Status    result.ProbeStatus `json:"status"`
	Reachable bool               `json:"reachable"`
	TLS       *storedTLS         `json:"tls"`
}

type storedTLS struct {
	Version     string       `json:"version"`
	CipherSuite string       `json:"cipher_suite"`
	Certs       []storedCert `json:"certs"`
}

type storedCert struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
}
