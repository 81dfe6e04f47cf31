package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tlsready/tlsready/scanner/dnsname"
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
// when none). It may reorder r.MX.
func newRecord(domain string, citizens int64, v result.Verdict, flags []string, r *storedResult, withMX bool) DomainRecord {
	rec := DomainRecord{Domain: domain, DomainUnicode: dnsname.Unicode(domain), Verdict: v, Citizens: citizens, Flags: nonNil(flags),
		MXHosts: []string{}, TLSVersions: []string{}, CertProblems: []string{}}
	if r == nil {
		return rec
	}
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
	slices.SortStableFunc(r.MX, func(a, b storedHost) int { return int(a.Preference) - int(b.Preference) })
	for _, h := range r.MX {
		rec.MXHosts = append(rec.MXHosts, h.Name)
		if h.TLSA != nil && h.TLSA.Secure && len(h.TLSA.Records) > 0 {
			rec.TLSAHosts++
		}
		problems = certFlags(problems, h.Flags)
		var mx *MXRecord // only for the JSON export
		if withMX {
			rec.MX = append(rec.MX, MXRecord{Name: h.Name, Preference: h.Preference, Secure: h.Secure, Flags: h.Flags, Addrs: []AddrRecord{}})
			mx = &rec.MX[len(rec.MX)-1]
			if h.TLSA != nil {
				mx.TLSA, mx.TLSASecure = h.TLSA.Status, h.TLSA.Secure
			}
		}
		for _, a := range h.Addrs {
			rec.IPs++
			problems = certFlags(problems, a.Flags)
			var ar AddrRecord
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
			} else if mx != nil {
				ar.Status = "skipped:" + a.Skipped
			}
			if mx != nil {
				ar.IP, ar.PKIXValid, ar.DANEMatch, ar.Flags = a.IP.String(), a.PKIXValid, a.DANEMatch, a.Flags
				mx.Addrs = append(mx.Addrs, ar)
			}
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

// recordBatch is a run of consecutive domains of an export: their history
// rows and raw stored results, then (after a worker) their encoded rows.
type recordBatch struct {
	rows  []batchRow
	arena []byte // the rows' raw results, back to back
	out   bytes.Buffer
	err   error
	done  chan struct{} // closed when out (or err) is ready
}

type batchRow struct {
	d          store.RunDomain
	start, end int  // the raw result in arena
	stored     bool // false: no stored result
}

// batchRows is the number of domains per batch: large enough that the
// channel hand-offs cost little, small enough that batches in flight stay
// small (a few hundred KiB each).
const batchRows = 256

// streamRecords writes every domain of a finished run, in domain order, as
// encode renders it, to write. The store's single pass (history joined to
// the raw results) feeds batches to GOMAXPROCS workers that decode and
// encode them; write gets each batch's bytes in order. At most
// 2*workers+2 batches exist at any time, so memory is bounded whatever the
// number of domains.
func streamRecords(ctx context.Context, st *store.Store, run store.Run, withMX bool,
	format exportFormat, write func([]byte) error) error {
	workers := max(1, runtime.GOMAXPROCS(0))
	nBatches := 2*workers + 2
	free := make(chan *recordBatch, nBatches)
	for range nBatches {
		free <- &recordBatch{rows: make([]batchRow, 0, batchRows)}
	}
	// Neither channel can fill up: there are only nBatches batches.
	work := make(chan *recordBatch, nBatches)
	order := make(chan *recordBatch, nBatches)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(work)
		defer close(order)
		var b *recordBatch
		send := func() {
			work <- b
			order <- b
			b = nil
		}
		err := st.RunResultsRaw(gctx, run.ID, func(d store.RunDomain, raw []byte) error {
			if b == nil {
				select {
				case b = <-free:
				case <-gctx.Done():
					return gctx.Err()
				}
				b.rows, b.arena, b.err = b.rows[:0], b.arena[:0], nil
				b.out.Reset()
				b.done = make(chan struct{})
			}
			row := batchRow{d: d, start: len(b.arena), stored: raw != nil}
			b.arena = append(b.arena, raw...)
			row.end = len(b.arena)
			b.rows = append(b.rows, row)
			if len(b.rows) == batchRows {
				send()
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("report: run %d: %w", run.ID, err)
		}
		if b != nil {
			send()
		}
		return nil
	})
	for range workers {
		g.Go(func() error {
			var x *csvReader // the CSV's records are read without a decoded result
			if !withMX {
				x = &csvReader{}
			}
			for b := range work {
				b.err = encodeBatch(b, withMX, format, x)
				close(b.done)
			}
			return nil
		})
	}
	g.Go(func() error {
		for b := range order {
			select {
			case <-b.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if b.err != nil {
				return b.err
			}
			if err := write(b.out.Bytes()); err != nil {
				return err
			}
			free <- b
		}
		return nil
	})
	return g.Wait()
}

// exportFormat starts encoding a batch of records into out: encode appends
// one record, flush ends the batch.
type exportFormat func(out *bytes.Buffer) (encode func(*DomainRecord) error, flush func() error)

// encodeBatch decodes a batch's stored results and encodes its records;
// x, when not nil (withMX false), reads them first (see csvReader).
func encodeBatch(b *recordBatch, withMX bool, format exportFormat, x *csvReader) error {
	encode, flush := format(&b.out)
	in := interner{}
	for _, row := range b.rows {
		d := row.d
		var rec DomainRecord
		if row.stored {
			raw := b.arena[row.start:row.end]
			v := bucketList[bucket(d.Verdict)]
			read := false
			if x != nil {
				rec = newRecord(d.Domain, d.Citizens, v, d.Flags, nil, false)
				read = x.record(raw, &rec)
			}
			if !read {
				var r storedResult
				if err := decodeStored(raw, &r, in); err != nil {
					return fmt.Errorf("report: stored result of %s: %w", d.Domain, err)
				}
				rec = newRecord(d.Domain, d.Citizens, v, d.Flags, &r, withMX)
			}
		} else {
			rec = newRecord(d.Domain, d.Citizens, d.Verdict, d.Flags, nil, withMX)
		}
		if err := encode(&rec); err != nil {
			return err
		}
	}
	return flush()
}

// runTotals returns a run's totals and counts per verdict bucket.
func runTotals(ctx context.Context, st *store.Store, run store.Run) (Count, []Count, error) {
	vt, err := st.RunVerdictTotals(ctx, run.ID)
	if err != nil {
		return Count{}, nil, fmt.Errorf("report: run %d: %w", run.ID, err)
	}
	counts := make([]Count, nBuckets)
	var total Count
	for v, t := range vt {
		b := &counts[bucket(v)]
		b.Citizens += t.Citizens
		b.Domains += t.Domains
		total.Citizens += t.Citizens
		total.Domains += t.Domains
	}
	return total, counts, nil
}

// WriteCSV writes one row per domain of a finished run (runID 0: the latest)
// with the columns CSVColumns; list cells are joined with ";".
func WriteCSV(ctx context.Context, st *store.Store, runID int64, w io.Writer) error {
	run, _, err := resolveRun(ctx, st, runID)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if err := cw.Write(CSVColumns); err != nil {
		return err
	}
	cw.Flush()
	err = streamRecords(ctx, st, run, false, csvFormat, func(b []byte) error {
		_, err := bw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// csvFormat encodes records as CSV rows with the columns CSVColumns.
func csvFormat(out *bytes.Buffer) (encode func(*DomainRecord) error, flush func() error) {
	cw := csv.NewWriter(out)
	row := make([]string, 0, len(CSVColumns))
	encode = func(r *DomainRecord) error {
		row = append(row[:0], r.Domain, r.DomainUnicode, string(r.Verdict), strconv.FormatInt(r.Citizens, 10),
			strings.Join(r.Flags, ";"), strings.Join(r.MXHosts, ";"), strconv.FormatBool(r.MXSecure),
			strconv.Itoa(r.IPs), strconv.Itoa(r.IPsReachable), strconv.Itoa(r.IPsTLS),
			strings.Join(r.TLSVersions, ";"), strings.Join(r.CertProblems, ";"), timeCell(r.CertNotAfter),
			r.MTASTSMode, strconv.Itoa(r.TLSAHosts), r.Reason, timeCell(r.ScannedAt))
		for i := range row {
			row[i] = safeCell(row[i])
		}
		return cw.Write(row)
	}
	flush = func() error {
		cw.Flush()
		return cw.Error()
	}
	return encode, flush
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
	total, counts, err := runTotals(ctx, st, run)
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
	err = streamRecords(ctx, st, run, true, jsonFormat, func(b []byte) error {
		if first && len(b) > 0 {
			b = b[1:] // the first object has no comma before it
			first = false
		}
		_, err := bw.Write(b)
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

// jsonFormat encodes records as elements of the domains array, each after
// a comma (WriteJSON drops the first one).
func jsonFormat(out *bytes.Buffer) (encode func(*DomainRecord) error, flush func() error) {
	encode = func(r *DomainRecord) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		out.WriteString(",\n    ")
		out.Write(b)
		return nil
	}
	return encode, func() error { return nil }
}

// ExportRecipients writes, for outreach, the recipients of a finished run
// (runID 0: the latest) whose domain had one of the verdicts, as CSV
// "id,domain,verdict" plus "address" when the scan kept addresses (decided
// by the first recipient: a run keeps all addresses or none).
//
// Only the latest run's recipient list is kept (recipients are not
// versioned per run): for a run whose list a later run has replaced it
// writes nothing and returns an error wrapping store.ErrRecipientsReplaced.
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
