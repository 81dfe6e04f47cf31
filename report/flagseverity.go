package report

import (
	"cmp"
	"slices"
	"strings"

	"github.com/tlsready/tlsready/scanner/result"
)

// Severity ranks a flag by what it means for the citizens' mail. The
// reasons table lists the flags most severe first, then by citizens
// affected, so that an informational flag carried by most domains
// (no-tlsrpt) does not top it.
type Severity int

// The severities, least severe first.
const (
	// SeverityInfo: explains a verdict or a lookup; no effect on how mail
	// travels (no-tlsrpt, mx-cname, retried-later).
	SeverityInfo Severity = iota
	// SeverityNotice: protection that could be stronger or is not in
	// force (old TLS versions, MTA-STS in testing, unusable TLSA records,
	// a policy that could not be read), or the domain accepts no mail.
	SeverityNotice
	// SeverityWarning: the certificate cannot be verified (encrypted at
	// best), or an MX host cannot be reached or looked up, so the TLS
	// state there is unknown.
	SeverityWarning
	// SeverityCritical: mail to the IP travels in plaintext (STARTTLS not
	// offered, refused or failing), or the domain's own policy makes
	// policy-honouring senders skip its servers (broken when none passes).
	SeverityCritical
)

// String returns the severity's word, as the report's catalogue keys use it
// ("sev_" + word).
func (s Severity) String() string {
	switch s {
	case SeverityCritical:
		return "critical"
	case SeverityWarning:
		return "warning"
	case SeverityNotice:
		return "notice"
	}
	return "info"
}

// flagSeverity is the severity of every flag the scanner sets (a test keeps
// it in step with the Flag* constants of scanner/result). The flags and
// their effect on the verdict are defined in docs/verdicts.md.
var flagSeverity = map[string]Severity{
	result.FlagNoSTARTTLS:      SeverityCritical,
	result.FlagSTARTTLSRefused: SeverityCritical,
	result.FlagHandshakeFailed: SeverityCritical,
	result.FlagDANEMismatch:    SeverityCritical,
	result.FlagSTSMXMismatch:   SeverityCritical,
	result.FlagSTSCertInvalid:  SeverityCritical,

	result.FlagCertExpired:      SeverityWarning,
	result.FlagCertNotYetValid:  SeverityWarning,
	result.FlagCertSelfSigned:   SeverityWarning,
	result.FlagCertNameMismatch: SeverityWarning,
	result.FlagCertUntrusted:    SeverityWarning,
	result.FlagProtocolError:    SeverityWarning, // after EHLO: STARTTLS not completed; before: not reachable
	result.FlagTimeout:          SeverityWarning, // likewise
	result.FlagBannerRefused:    SeverityWarning,
	result.FlagEHLORefused:      SeverityWarning,
	result.FlagEHLOLost:         SeverityWarning,
	result.FlagConnectFailed:    SeverityWarning,
	result.FlagMXDangling:       SeverityWarning,
	result.FlagMXIPLiteral:      SeverityWarning,
	result.FlagServfail:         SeverityWarning,
	result.FlagDNSTimeout:       SeverityWarning,
	result.FlagTLSAServfail:     SeverityWarning,

	result.FlagTLS10:            SeverityNotice,
	result.FlagTLS11:            SeverityNotice,
	result.FlagTLSNotJudged:     SeverityNotice,
	result.FlagIPv6NotProbed:    SeverityNotice,
	result.FlagMXPrivate:        SeverityNotice,
	result.FlagMXTruncated:      SeverityNotice,
	result.FlagNullMX:           SeverityNotice,
	result.FlagNXDomain:         SeverityNotice,
	result.FlagSTSTesting:       SeverityNotice,
	result.FlagSTSNone:          SeverityNotice,
	result.FlagSTSFetchFailed:   SeverityNotice,
	result.FlagSTSInvalid:       SeverityNotice,
	result.FlagSTSRecordInvalid: SeverityNotice,
	result.FlagSTSLookupFailed:  SeverityNotice,
	result.FlagTLSAInsecure:     SeverityNotice,
	result.FlagTLSAUnusable:     SeverityNotice,

	result.FlagNoTLSRPT:         SeverityInfo,
	result.FlagTLSRPTLookupFail: SeverityInfo,
	result.FlagImplicitMX:       SeverityInfo,
	result.FlagMXCNAME:          SeverityInfo,
	result.FlagRetriedLater:     SeverityInfo,
	result.FlagSNIPerName:       SeverityInfo,
	result.FlagTLSFallback:      SeverityInfo,
	result.FlagSTSCached:        SeverityInfo,
}

// FlagSeverity returns a flag's severity. The report's "other" row and a
// flag this version does not know (a newer scanner's) are SeverityNotice:
// listed, neither hidden at the bottom nor put above the known problems.
func FlagSeverity(flag string) Severity {
	if s, ok := flagSeverity[flag]; ok {
		return s
	}
	return SeverityNotice
}

// sortFlags orders flag counts for the reasons table: most severe first,
// then most citizens, then most domains, then by name.
func sortFlags(fs []FlagCount) {
	slices.SortFunc(fs, func(a, b FlagCount) int {
		return cmp.Or(
			cmp.Compare(FlagSeverity(b.Flag), FlagSeverity(a.Flag)),
			cmp.Compare(b.Citizens, a.Citizens),
			cmp.Compare(b.Domains, a.Domains),
			strings.Compare(a.Flag, b.Flag))
	})
}
