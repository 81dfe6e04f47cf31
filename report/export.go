package report

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// CSVColumns are the columns of the per-domain CSV export, in order. They
// are a stable interface (README "Report exports").
var CSVColumns = []string{
	"domain", "domain_unicode", "verdict", "citizens", "flags", "mx_hosts", "mx_secure",
	"ips", "ips_reachable", "ips_tls", "tls_versions", "cert_problems", "cert_not_after",
	"mta_sts_mode", "tlsa_hosts", "reason", "scanned_at",
}

// DomainRecord is one row of the CSV and JSON exports: the domain's verdict,
// flags and citizens in the run (the run's snapshot) and the MX/TLS details
// of its latest stored result (scanned_at says when those were measured).
type DomainRecord struct {
	Domain        string         `json:"domain"`
	DomainUnicode string         `json:"domain_unicode,omitempty"`
	Verdict       result.Verdict `json:"verdict"`
	Citizens      int64          `json:"citizens"`
	Flags         []string       `json:"flags"`
	MXHosts       []string       `json:"mx_hosts"` // by preference
	MXSecure      bool           `json:"mx_secure"`
	IPs           int            `json:"ips"`           // MX addresses found
	IPsReachable  int            `json:"ips_reachable"` // answered with a 220 banner
	IPsTLS        int            `json:"ips_tls"`       // completed STARTTLS
	TLSVersions   []string       `json:"tls_versions"`  // distinct, e.g. "TLS 1.3"
	CertProblems  []string       `json:"cert_problems"` // cert-* flags of the domain, hosts and addresses
	CertNotAfter  *time.Time     `json:"cert_not_after,omitempty"`
	MTASTSMode    string         `json:"mta_sts_mode,omitempty"` // enforce, testing, none, "" (no policy)
	TLSAHosts     int            `json:"tlsa_hosts"`             // MX hosts with a DNSSEC-secure TLSA RRset
	Reason        string         `json:"reason,omitempty"`
	ScannedAt     *time.Time     `json:"scanned_at,omitempty"` // nil: no stored result
	MX            []MXRecord     `json:"mx,omitempty"`         // JSON only
}

// MXRecord is one MX host in the JSON export.
type MXRecord struct {
	Name       string       `json:"name"`
	Preference uint16       `json:"preference"`
	Secure     bool         `json:"secure"`
	TLSA       string       `json:"tlsa,omitempty"` // TLSA lookup status; "" when not looked up
	TLSASecure bool         `json:"tlsa_secure,omitempty"`
	Flags      []string     `json:"flags,omitempty"`
	Addrs      []AddrRecord `json:"addrs"`
}

// AddrRecord is one MX address in the JSON export.
type AddrRecord struct {
	IP           string     `json:"ip"`
	Status       string     `json:"status"` // probe status, or "skipped:<why>"
	TLSVersion   string     `json:"tls_version,omitempty"`
	CipherSuite  string     `json:"cipher_suite,omitempty"`
	PKIXValid    bool       `json:"pkix_valid"`
	DANEMatch    *bool      `json:"dane_match,omitempty"`
	CertSubject  string     `json:"cert_subject,omitempty"`
	CertIssuer   string     `json:"cert_issuer,omitempty"`
	CertNotAfter *time.Time `json:"cert_not_after,omitempty"`
	Flags        []string   `json:"flags,omitempty"`
}

// newRecord combines a run snapshot with the domain's stored result (nil
// when none).
func newRecord(domain string, citizens int64, v result.Verdict, flags []string, r *result.Result, withMX bool) DomainRecord {
	rec := DomainRecord{Domain: domain, Verdict: v, Citizens: citizens, Flags: nonNil(flags),
		MXHosts: []string{}, TLSVersions: []string{}, CertProblems: []string{}}
	if r == nil {
		return rec
	}
	if len(rec.Flags) == 0 && r.Verdict == v {
		rec.Flags = nonNil(r.Flags)
	}
	rec.DomainUnicode = r.Unicode
	rec.MXSecure = r.MXSecure
	rec.Reason = r.Reason
	if !r.ScannedAt.IsZero() {
		t := r.ScannedAt.UTC()
		rec.ScannedAt = &t
	}
	if r.MTASTS != nil {
		rec.MTASTSMode = r.MTASTS.Mode
	}
	problems := certFlags(nil, r.Flags)
	hosts := slices.Clone(r.MX)
	slices.SortStableFunc(hosts, func(a, b result.Host) int { return int(a.Preference) - int(b.Preference) })
	for _, h := range hosts {
		rec.MXHosts = append(rec.MXHosts, h.Name)
		if h.TLSA != nil && h.TLSA.Secure && len(h.TLSA.Records) > 0 {
			rec.TLSAHosts++
		}
		problems = certFlags(problems, h.Flags)
		mx := MXRecord{Name: h.Name, Preference: h.Preference, Secure: h.Secure, Flags: h.Flags, Addrs: []AddrRecord{}}
		if h.TLSA != nil {
			mx.TLSA, mx.TLSASecure = h.TLSA.Status, h.TLSA.Secure
		}
		for _, a := range h.Addrs {
			rec.IPs++
			problems = certFlags(problems, a.Flags)
			ar := AddrRecord{IP: a.IP.String(), PKIXValid: a.PKIXValid, DANEMatch: a.DANEMatch, Flags: a.Flags}
			if p := a.Probe; p != nil {
				ar.Status = string(p.Status)
				if p.Reachable {
					rec.IPsReachable++
				}
				if t := p.TLS; t != nil {
					rec.IPsTLS++
					ar.TLSVersion, ar.CipherSuite = t.Version, t.CipherSuite
					if t.Version != "" && !slices.Contains(rec.TLSVersions, t.Version) {
						rec.TLSVersions = append(rec.TLSVersions, t.Version)
					}
					if len(t.Certs) > 0 {
						leaf := t.Certs[0]
						na := leaf.NotAfter.UTC()
						ar.CertSubject, ar.CertIssuer, ar.CertNotAfter = leaf.Subject, leaf.Issuer, &na
						if !na.IsZero() && (rec.CertNotAfter == nil || na.Before(*rec.CertNotAfter)) {
							rec.CertNotAfter = &na
						}
					}
				}
			} else {
				ar.Status = "skipped:" + a.Skipped
			}
			mx.Addrs = append(mx.Addrs, ar)
		}
		if withMX {
			rec.MX = append(rec.MX, mx)
		}
	}
	slices.Sort(rec.TLSVersions)
	slices.Sort(problems)
	rec.CertProblems = nonNil(problems)
	return rec
}

func certFlags(dst, flags []string) []string {
	for _, f := range flags {
		if strings.HasPrefix(f, "cert-") && !slices.Contains(dst, f) {
			dst = append(dst, f)
		}
	}
	return dst
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// eachRecord streams every domain of a finished run to fn, in domain order
// as the store returns results, then any domain without a result of that
// run. Memory: about 24 bytes per domain for the index, not the results.
func eachRecord(ctx context.Context, st *store.Store, run store.Run, idx *verdictIndex, withMX bool, fn func(DomainRecord) error) error {
	// The store decodes results in its goroutine; rows are built and written
	// in another, so both cores work.
	ch := make(chan result.Result, 256)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(ch)
		err := st.Results(gctx, run.ID, func(r result.Result) error {
			select {
			case ch <- r:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
		if err != nil {
			return fmt.Errorf("report: results: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		for r := range ch {
			e := idx.find(r.Domain)
			if e == nil || e.seen {
				continue
			}
			e.seen = true
			idx.unseen--
			if err := fn(newRecord(r.Domain, e.citizens, bucketList[e.bucket], nil, &r, withMX)); err != nil {
				return err
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if idx.unseen == 0 {
		return nil
	}
	// Domains of the run whose result the store did not return for this run
	// (e.g. a fresh result reused from an earlier run): look them up.
	return st.RunDomains(ctx, run.ID, func(d store.RunDomain) error {
		e := idx.find(d.Domain)
		if e == nil || e.seen {
			return nil
		}
		e.seen = true
		r, err := st.Lookup(ctx, d.Domain)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fn(newRecord(d.Domain, d.Citizens, d.Verdict, d.Flags, nil, withMX))
		case err != nil:
			return fmt.Errorf("report: lookup: %w", err)
		}
		return fn(newRecord(d.Domain, d.Citizens, d.Verdict, d.Flags, &r, withMX))
	})
}

// indexRun reads a run's snapshot into a verdict index and its totals.
func indexRun(ctx context.Context, st *store.Store, run store.Run) (*verdictIndex, Count, []Count, error) {
	x := newVerdictIndex(maphash.MakeSeed())
	counts := make([]Count, nBuckets)
	var total Count
	err := st.RunDomains(ctx, run.ID, func(d store.RunDomain) error {
		x.add(d.Domain, d.Citizens, d.Verdict)
		total.add(d.Citizens)
		counts[bucket(d.Verdict)].add(d.Citizens)
		return ctx.Err()
	})
	if err != nil {
		return nil, Count{}, nil, fmt.Errorf("report: run %d: %w", run.ID, err)
	}
	x.sort()
	x.unseen = len(x.entries)
	return x, total, counts, nil
}

// WriteCSV writes one row per domain of a finished run (runID 0: the latest)
// with the columns CSVColumns; list cells are joined with ";".
func WriteCSV(ctx context.Context, st *store.Store, runID int64, w io.Writer) error {
	run, _, err := resolveRun(ctx, st, runID)
	if err != nil {
		return err
	}
	idx, _, _, err := indexRun(ctx, st, run)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if err := cw.Write(CSVColumns); err != nil {
		return err
	}
	row := make([]string, len(CSVColumns))
	err = eachRecord(ctx, st, run, idx, false, func(r DomainRecord) error {
		row = row[:0]
		row = append(row, r.Domain, r.DomainUnicode, string(r.Verdict), strconv.FormatInt(r.Citizens, 10),
			strings.Join(r.Flags, ";"), strings.Join(r.MXHosts, ";"), strconv.FormatBool(r.MXSecure),
			strconv.Itoa(r.IPs), strconv.Itoa(r.IPsReachable), strconv.Itoa(r.IPsTLS),
			strings.Join(r.TLSVersions, ";"), strings.Join(r.CertProblems, ";"), timeCell(r.CertNotAfter),
			r.MTASTSMode, strconv.Itoa(r.TLSAHosts), r.Reason, timeCell(r.ScannedAt))
		for i := range row {
			row[i] = safeCell(row[i])
		}
		return cw.Write(row)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

func timeCell(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// safeCell defuses spreadsheet formulas (CSV injection): text from DNS or
// servers that starts with = + - @ or a control character gets a leading '.
func safeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r', '\n':
		return "'" + s
	}
	return s
}

// jsonHeader is the part of the JSON export before the domains.
type jsonHeader struct {
	Format   string         `json:"format"`
	Run      store.Run      `json:"run"`
	Total    Count          `json:"total"`
	Verdicts []VerdictCount `json:"verdicts"`
	WhatIf   WhatIf         `json:"what_if"`
}

// JSONFormat names the JSON export's layout; it changes only with an
// incompatible change.
const JSONFormat = "tlsready-report/1"

// WriteJSON writes the run's metadata, totals, verdict counts and what-if
// numbers, then one object per domain ("domains"), streaming.
func WriteJSON(ctx context.Context, st *store.Store, runID int64, w io.Writer) error {
	run, _, err := resolveRun(ctx, st, runID)
	if err != nil {
		return err
	}
	idx, total, counts, err := indexRun(ctx, st, run)
	if err != nil {
		return err
	}
	h := jsonHeader{Format: JSONFormat, Run: run, Total: total, WhatIf: computeWhatIf(counts)}
	for i, v := range bucketList {
		h.Verdicts = append(h.Verdicts, VerdictCount{Verdict: v, Count: counts[i]})
	}
	hb, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	// Open the header object and add the domains array to it.
	bw.Write(hb[:len(hb)-2]) // drop "\n}"
	bw.WriteString(",\n  \"domains\": [")
	first := true
	err = eachRecord(ctx, st, run, idx, true, func(r DomainRecord) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if first {
			bw.WriteString("\n    ")
			first = false
		} else {
			bw.WriteString(",\n    ")
		}
		_, err = bw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	if !first {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}

// ExportRecipients writes, for outreach, the recipients of a finished run
// (runID 0: the latest) whose domain had one of the verdicts, as CSV
// "id,domain,verdict" plus "address" when the scan kept addresses (decided
// by the first recipient: a run keeps all addresses or none).
func ExportRecipients(ctx context.Context, st *store.Store, runID int64, verdicts []result.Verdict, w io.Writer) (int64, error) {
	run, _, err := resolveRun(ctx, st, runID)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	var n int64
	withAddr := false
	err = st.RecipientsByVerdict(ctx, run.ID, verdicts, func(r store.Recipient, v result.Verdict) error {
		if n == 0 {
			withAddr = r.Address != ""
			hdr := []string{"id", "domain", "verdict"}
			if withAddr {
				hdr = append(hdr, "address")
			}
			if err := cw.Write(hdr); err != nil {
				return err
			}
		}
		n++
		row := []string{safeCell(r.ID), r.Domain, string(v)}
		if withAddr {
			row = append(row, safeCell(r.Address))
		}
		return cw.Write(row)
	})
	if err != nil {
		return n, fmt.Errorf("report: recipients: %w", err)
	}
	if n == 0 {
		if err := cw.Write([]string{"id", "domain", "verdict"}); err != nil {
			return 0, err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// ParseVerdictList parses a comma-separated list of verdict words
// ("plaintext,partial"); spaces around words are ignored, duplicates dropped.
func ParseVerdictList(s string) ([]result.Verdict, error) {
	var out []result.Verdict
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		v, err := result.ParseVerdict(w)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("report: empty verdict list")
	}
	return out, nil
}
