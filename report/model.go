// Package report turns a finished scan run into what the portal's policy
// analysts read: a self-contained HTML report (Japanese or English), terminal
// tables, and per-domain CSV and JSON exports.
//
// Load builds a bounded Model from the store: aggregates are computed while
// streaming the run's per-domain history (store.RunDomains), and only the
// top N domains are loaded in full (store.Lookup), so a run with a million
// domains costs memory proportional to N plus a small fixed-size record per
// domain of the previous run (for the change comparison); older runs of the
// trend are counted per verdict in SQLite. The plaintext, partial and broken
// domains with most citizens (up to LoadOptions.ProviderDomains) are looked
// up too, to group them by MX provider. The CSV and JSON exports stream
// one row per domain from the store to the writer, decoding the stored
// results on every core with a bounded number of rows in flight.
//
// It owns the presentation (templates, the Japanese and English wording,
// the ranking of reasons) and must not know how a verdict is reached: it
// shows the verdicts and flags of docs/verdicts.md as the scanner stored them
// and never reclassifies a domain.
package report

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// Sentinel errors.
var (
	ErrNoRun          = errors.New("report: no finished run in the database")
	ErrRunNotFinished = errors.New("report: run is not finished")
)

// LoadOptions tune Load. The zero value is usable.
type LoadOptions struct {
	TopN            int              // domains loaded in full for the HTML table; 0: 500
	TopCharted      int              // domains in the "top domains at risk" chart; 0: 15
	TrendRuns       int              // finished runs in the trend, this one included; 0: 12, <0: none
	TopChanges      int              // domains listed per direction in the changes; 0: 50
	MaxFlags        int              // distinct flags counted; the rest go to "other"; 0: 256
	TopContacts     int              // plaintext, partial and broken domains in "who to call"; 0: 50
	TopProviders    int              // MX providers ranked by citizens at those domains; 0: 20, <0: none
	ProviderDomains int              // such domains looked up (one Lookup each) to rank providers, most citizens first; 0: 20,000
	Now             func() time.Time // nil: time.Now
}

func (o *LoadOptions) defaults() {
	if o.TopN <= 0 {
		o.TopN = 500
	}
	if o.TopCharted <= 0 {
		o.TopCharted = 15
	}
	o.TrendRuns = cmp.Or(o.TrendRuns, 12)
	if o.TopChanges <= 0 {
		o.TopChanges = 50
	}
	if o.MaxFlags <= 0 {
		o.MaxFlags = 256
	}
	if o.TopContacts <= 0 {
		o.TopContacts = 50
	}
	o.TopProviders = cmp.Or(o.TopProviders, 20)
	if o.ProviderDomains <= 0 {
		o.ProviderDomains = 20_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// nBuckets is the number of verdict buckets: the ten verdicts and Unknown.
var nBuckets = len(result.Verdicts) + 1

// Buckets lists the verdicts as counted in a report: the ten verdicts, best
// first, then result.Unknown (a domain of the run without a known verdict).
func Buckets() []result.Verdict {
	return append(slices.Clone(result.Verdicts), result.Unknown)
}

// bucketList is Buckets(), read-only.
var bucketList = Buckets()

// bucket maps a verdict to its index in Buckets (Unknown for anything invalid).
func bucket(v result.Verdict) int { return v.Rank() }

// Count is a number of citizens and of domains.
type Count struct {
	Citizens int64 `json:"citizens"`
	Domains  int64 `json:"domains"`
}

func (c *Count) add(citizens int64) {
	c.Citizens += citizens
	c.Domains++
}

// VerdictCount is the count of one verdict bucket.
type VerdictCount struct {
	Verdict result.Verdict `json:"verdict"`
	Count
}

// FlagCount counts the domains (and their citizens) that carry one flag.
type FlagCount struct {
	Flag string `json:"flag"` // "other" collects flags beyond LoadOptions.MaxFlags
	Count
}

// DomainRow is one domain of the run with its run snapshot (verdict, flags,
// citizens) and, for the top N, the latest full result.
type DomainRow struct {
	Rank     int            `json:"rank"` // 1 = most citizens
	Domain   string         `json:"domain"`
	Unicode  string         `json:"domain_unicode,omitempty"` // U-label form of an IDN, for display
	Citizens int64          `json:"citizens"`
	Verdict  result.Verdict `json:"verdict"`
	Flags    []string       `json:"flags"`
	Result   *result.Result `json:"result,omitempty"` // nil when no result is stored
}

// Contact is one of the run's plaintext, partial and broken domains with the
// most citizens, for the "who to call" list; what is wrong and what fixes it
// are derived from its flags (DomainAdvice).
type Contact struct {
	DomainRow
	// Provider is the registrable domain of the most preferred MX host of
	// its latest stored result ("" without one), ProviderUnicode its U-label
	// form when it is an IDN.
	Provider        string `json:"provider,omitempty"`
	ProviderUnicode string `json:"provider_unicode,omitempty"`
}

// TrendPoint is one finished run's verdict distribution.
type TrendPoint struct {
	Run      store.Run `json:"run"`
	Total    Count     `json:"total"`
	Verdicts []Count   `json:"verdicts"` // indexed like Buckets()
}

// Change is one domain whose verdict changed since the previous run.
type Change struct {
	Domain   string         `json:"domain"`
	Unicode  string         `json:"domain_unicode,omitempty"` // U-label form of an IDN, for display
	From     result.Verdict `json:"from"`
	To       result.Verdict `json:"to"`
	Citizens int64          `json:"citizens"` // citizens in this run
}

// Changes compares the run with the previous finished run. Changes to or
// from a temporary verdict (unreachable, dns-error) or unknown say nothing
// about TLS: they are counted apart as NotComparable, never as better/worse.
type Changes struct {
	Previous      store.Run `json:"previous"`
	Better        Count     `json:"better"`
	Worse         Count     `json:"worse"`
	Unchanged     Count     `json:"unchanged"`
	NotComparable Count     `json:"not_comparable"`
	New           Count     `json:"new"`  // domains not in the previous run (citizens now)
	Gone          Count     `json:"gone"` // domains of the previous run not in this one (citizens then)
	TopBetter     []Change  `json:"top_better"`
	TopWorse      []Change  `json:"top_worse"`
	// PlaintextDelta is the change in citizens at plaintext domains.
	PlaintextDelta int64 `json:"plaintext_delta"`
}

// Model is everything the HTML report and the terminal table show. Its size
// is bounded by LoadOptions, not by the number of domains.
type Model struct {
	GeneratedAt time.Time      `json:"generated_at"`
	Run         store.Run      `json:"run"`
	Total       Count          `json:"total"`
	Verdicts    []VerdictCount `json:"verdicts"` // Buckets() order
	WhatIf      WhatIf         `json:"what_if"`
	Flags       []FlagCount    `json:"flags"` // most severe first, then most citizens (sortFlags)
	Top         []DomainRow    `json:"top"`   // the TopN domains with most citizens
	AtRisk      []DomainRow    `json:"at_risk"`
	Tail        TailSummary    `json:"tail"`
	Trend       []TrendPoint   `json:"trend"`             // oldest first, this run last
	Changes     *Changes       `json:"changes,omitempty"` // nil without a previous finished run
	Contacts    []Contact      `json:"contacts"`          // plaintext, partial, broken domains, most citizens first
	Providers   []Provider     `json:"providers"`         // MX providers, most citizens at those domains first
	// ProviderCoverage: the plaintext, partial and broken domains grouped
	// into Providers, of all of them.
	ProviderCoverage ProviderCoverage `json:"provider_coverage"`
	// Exports: the recipient exports (personal data) the database's audit
	// trail holds when the report is made (store.Exports).
	Exports ExportTrail `json:"exports"`
	// Pins: the gateway pins active when the report is made (store.Pins):
	// domains whose gateway policy an administrator set over the scan
	// results, at most MaxPins of them; PinCount counts them all.
	Pins     []PinRow `json:"pins"`
	PinCount int      `json:"pin_count"`
}

// MaxPins bounds the pins a report lists.
const MaxPins = 200

// PinRow is an active gateway pin (tlsready pin set).
type PinRow struct {
	Domain   string    `json:"domain"`
	Unicode  string    `json:"domain_unicode,omitempty"` // U-label form of an IDN, for display
	Policy   string    `json:"policy"`
	Reason   string    `json:"reason"`
	Until    time.Time `json:"until,omitzero"` // zero: until removed
	SetBy    string    `json:"set_by"`         // operating-system user
	SetAt    time.Time `json:"set_at"`
	Citizens int64     `json:"citizens"` // at the domain in this run (0: not in it)
}

// ExportTrail summarises the audit trail of recipient exports; who
// exported what is for tlsready status, not for a report that is shared.
type ExportTrail struct {
	Count int64     `json:"count"`
	Last  time.Time `json:"last,omitzero"`
}

// TailSummary summarises the domains beyond the top N (the full list is in
// the CSV export).
type TailSummary struct {
	Total    Count   `json:"total"`
	Verdicts []Count `json:"verdicts"` // indexed like Buckets()
}

// Verdict returns the count of one verdict bucket.
func (m *Model) Verdict(v result.Verdict) Count { return m.Verdicts[bucket(v)].Count }

// AtRiskVerdicts are the verdicts whose citizens may receive plaintext mail
// today: the domains the "top domains at risk" chart ranks.
var AtRiskVerdicts = []result.Verdict{result.Plaintext, result.Partial}

// Load builds the report model of a finished run (runID 0: the latest
// finished run).
//
// The run and the previous finished run are each streamed once,
// concurrently (one SQLite read connection each), while the older runs of
// the trend are only counted per verdict in SQLite (store.RunVerdictTotals);
// only the top domains are then loaded in full.
func Load(ctx context.Context, st *store.Store, runID int64, opts LoadOptions) (*Model, error) {
	opts.defaults()
	run, finished, err := resolveRun(ctx, st, runID)
	if err != nil {
		return nil, err
	}
	m := &Model{GeneratedAt: opts.Now().UTC(), Run: run}
	exports, n, err := st.Exports(ctx, time.Time{}, 1)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	m.Exports.Count = n
	if len(exports) > 0 {
		m.Exports.Last = exports[0].At
	}
	pins, err := st.Pins(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	m.Pins = []PinRow{}
	pinIdx := map[string]int{}
	for _, p := range pins {
		if !p.Active(m.GeneratedAt) {
			continue
		}
		m.PinCount++
		if len(m.Pins) < MaxPins {
			pinIdx[p.Domain] = len(m.Pins)
			m.Pins = append(m.Pins, PinRow{Domain: p.Domain, Unicode: dnsname.Unicode(p.Domain), Policy: p.Policy, Reason: p.Reason,
				Until: p.Until, SetBy: p.OSUser, SetAt: p.At})
		}
	}
	pos := slices.IndexFunc(finished, func(r store.Run) bool { return r.ID == run.ID })

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.GOMAXPROCS(0)))
	seed := maphash.MakeSeed()

	// The previous finished run: per-domain verdicts, compactly, for the
	// change comparison, and its aggregates for the trend.
	var prev *verdictIndex
	var prevPoint *TrendPoint
	if pos > 0 {
		g.Go(func() (err error) {
			prev, prevPoint, err = loadPrevious(gctx, st, finished[pos-1], seed)
			return err
		})
	}

	// Older runs of the trend: aggregates only.
	var older []TrendPoint
	if opts.TrendRuns > 1 {
		start := max(0, pos+1-opts.TrendRuns)
		if end := pos - 1; end > start {
			older = make([]TrendPoint, end-start)
			for i := range older {
				r := finished[start+i]
				g.Go(func() error {
					p, err := runPoint(gctx, st, r)
					older[i] = p
					return err
				})
			}
		}
	}

	// This run.
	counts := make([]Count, nBuckets)
	tail := TailSummary{Verdicts: make([]Count, nBuckets)}
	flags := map[string]*FlagCount{}
	var total Count
	var cur []indexEntry  // in stream order, only when there is a previous run
	var call []callDomain // plaintext, partial and broken domains to group by provider
	g.Go(func() error {
		err := st.RunDomains(gctx, run.ID, func(d store.RunDomain) error {
			b := bucket(d.Verdict)
			if i, ok := pinIdx[d.Domain]; ok { // this goroutine alone writes m.Pins until Wait
				m.Pins[i].Citizens = d.Citizens
			}
			counts[b].add(d.Citizens)
			total.add(d.Citizens)
			for _, f := range d.Flags {
				fc := flags[f]
				if fc == nil {
					if len(flags) >= opts.MaxFlags {
						f = "other"
						fc = flags[f]
					}
					if fc == nil {
						fc = &FlagCount{Flag: f}
						flags[f] = fc
					}
				}
				fc.add(d.Citizens)
			}
			if len(m.Top) < opts.TopN {
				m.Top = append(m.Top, DomainRow{Rank: len(m.Top) + 1, Domain: d.Domain, Unicode: dnsname.Unicode(d.Domain),
					Citizens: d.Citizens, Verdict: d.Verdict, Flags: d.Flags})
			} else {
				tail.Total.add(d.Citizens)
				tail.Verdicts[b].add(d.Citizens)
			}
			if slices.Contains(CallVerdicts, d.Verdict) {
				m.ProviderCoverage.All.add(d.Citizens)
				if len(m.Contacts) < opts.TopContacts {
					m.Contacts = append(m.Contacts, Contact{DomainRow: DomainRow{Rank: int(total.Domains), Domain: d.Domain,
						Unicode: dnsname.Unicode(d.Domain), Citizens: d.Citizens, Verdict: d.Verdict, Flags: d.Flags}})
				}
				if opts.TopProviders > 0 && len(call) < opts.ProviderDomains {
					call = append(call, callDomain{domain: d.Domain, citizens: d.Citizens, verdict: d.Verdict})
					m.ProviderCoverage.Grouped.add(d.Citizens)
				}
			}
			if len(m.AtRisk) < opts.TopCharted && slices.Contains(AtRiskVerdicts, d.Verdict) {
				m.AtRisk = append(m.AtRisk, DomainRow{Rank: int(total.Domains), Domain: d.Domain, Unicode: dnsname.Unicode(d.Domain),
					Citizens: d.Citizens, Verdict: d.Verdict, Flags: d.Flags})
			}
			if pos > 0 {
				cur = append(cur, indexEntry{h: maphash.String(seed, d.Domain), citizens: d.Citizens, bucket: uint8(b)})
			}
			return gctx.Err()
		})
		if err != nil {
			return fmt.Errorf("report: run %d: %w", run.ID, err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}

	m.Total = total
	m.Tail = tail
	for i, v := range bucketList {
		m.Verdicts = append(m.Verdicts, VerdictCount{Verdict: v, Count: counts[i]})
	}
	m.WhatIf = computeWhatIf(counts)
	for _, fc := range flags {
		m.Flags = append(m.Flags, *fc)
	}
	sortFlags(m.Flags)
	if prev != nil {
		ch, err := compareRuns(ctx, st, run, prev, cur, opts.TopChanges)
		if err != nil {
			return nil, err
		}
		ch.Previous = prevPoint.Run
		ch.PlaintextDelta = counts[bucket(result.Plaintext)].Citizens - prevPoint.Verdicts[bucket(result.Plaintext)].Citizens
		m.Changes = ch
	}
	cur = nil

	// Full results of the top domains (also shared by the at-risk chart).
	full := make(map[string]*result.Result, len(m.Top))
	for i := range m.Top {
		r, err := st.Lookup(ctx, m.Top[i].Domain)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("report: lookup: %w", err)
		}
		m.Top[i].Result = &r
		full[r.Domain] = &r
	}
	for i := range m.AtRisk {
		m.AtRisk[i].Result = full[m.AtRisk[i].Domain]
	}
	// The providers of the grouped domains and of the contacts (most are
	// among the top domains, loaded already). Both lists are the first such
	// domains of the run (most citizens first): the longer holds the other.
	var lookup []string
	for _, d := range call {
		lookup = append(lookup, d.domain)
	}
	if len(m.Contacts) > len(call) { // ProviderDomains < TopContacts, or no providers
		lookup = lookup[:0]
		for _, c := range m.Contacts {
			lookup = append(lookup, c.Domain)
		}
	}
	mxOf, err := primaryMXOf(ctx, st, lookup, full)
	if err != nil {
		return nil, err
	}
	m.Providers = groupProviders(call, mxOf, opts.TopProviders)
	for i := range m.Contacts {
		c := &m.Contacts[i]
		c.Provider = registrable(mxOf[c.Domain])
		c.ProviderUnicode = dnsname.Unicode(c.Provider)
	}

	if opts.TrendRuns > 0 {
		m.Trend = older
		if prevPoint != nil && opts.TrendRuns > 1 {
			m.Trend = append(m.Trend, *prevPoint)
		}
		m.Trend = append(m.Trend, TrendPoint{Run: run, Total: total, Verdicts: slices.Clone(counts)})
	}
	return m, nil
}

// errStop ends a store iteration early.
var errStop = errors.New("report: stop")

// compareRuns counts the changes between the previous run (prev) and this
// run (cur, in the store's order: most citizens first), then fetches the
// names of the top changed domains with a second pass over the run that
// stops as soon as it has them.
func compareRuns(ctx context.Context, st *store.Store, run store.Run, prev *verdictIndex, cur []indexEntry, top int) (*Changes, error) {
	// Capacity top: appends never reallocate, so the pointers in want stay valid.
	c := &Changes{TopBetter: make([]Change, 0, top), TopWorse: make([]Change, 0, top)}
	want := map[int]*Change{} // stream position -> change waiting for its name
	last := -1
	for i, e := range cur {
		p := prev.findHash(e.h)
		if p == nil {
			c.New.add(e.citizens)
			continue
		}
		if p.seen { // a hash collision or a duplicate row: count once
			continue
		}
		p.seen = true
		from, to := bucketList[p.bucket], bucketList[e.bucket]
		var list *[]Change
		switch {
		case from == to:
			c.Unchanged.add(e.citizens)
		case !comparable(from) || !comparable(to):
			c.NotComparable.add(e.citizens)
		case to.Rank() < from.Rank():
			c.Better.add(e.citizens)
			list = &c.TopBetter
		default:
			c.Worse.add(e.citizens)
			list = &c.TopWorse
		}
		if list != nil && len(*list) < top {
			*list = append(*list, Change{From: from, To: to, Citizens: e.citizens})
			want[i] = &(*list)[len(*list)-1]
			last = i
		}
	}
	for _, p := range prev.entries {
		if !p.seen {
			c.Gone.add(p.citizens)
		}
	}
	if last < 0 {
		return c, nil
	}
	i := 0
	err := st.RunDomains(ctx, run.ID, func(d store.RunDomain) error {
		if ch := want[i]; ch != nil {
			ch.Domain, ch.Unicode = d.Domain, dnsname.Unicode(d.Domain)
		}
		i++
		if i > last {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("report: run %d: %w", run.ID, err)
	}
	return c, nil
}

// resolveRun finds the run to report on and the finished runs, oldest first.
func resolveRun(ctx context.Context, st *store.Store, runID int64) (store.Run, []store.Run, error) {
	runs, err := st.Runs(ctx)
	if err != nil {
		return store.Run{}, nil, fmt.Errorf("report: runs: %w", err)
	}
	var finished []store.Run
	for _, r := range runs {
		if r.Status == "finished" {
			finished = append(finished, r)
		}
	}
	if runID == 0 {
		if len(finished) == 0 {
			return store.Run{}, nil, ErrNoRun
		}
		return finished[len(finished)-1], finished, nil
	}
	i := slices.IndexFunc(runs, func(r store.Run) bool { return r.ID == runID })
	if i < 0 {
		return store.Run{}, nil, fmt.Errorf("report: run %d: %w", runID, store.ErrNotFound)
	}
	if runs[i].Status != "finished" {
		return store.Run{}, nil, fmt.Errorf("%w: run %d is %s", ErrRunNotFinished, runID, runs[i].Status)
	}
	return runs[i], finished, nil
}

// runPoint computes one run's distribution from the store's per-verdict
// totals (no pass over the run's domains).
func runPoint(ctx context.Context, st *store.Store, run store.Run) (TrendPoint, error) {
	total, counts, err := runTotals(ctx, st, run)
	if err != nil {
		return TrendPoint{Run: run}, fmt.Errorf("report: trend: %w", err)
	}
	return TrendPoint{Run: run, Total: total, Verdicts: counts}, nil
}

// verdictIndex is a compact, sorted record of a run's domains: a 64-bit hash
// of the name, the citizens and the verdict bucket (about 24 bytes per domain).
type verdictIndex struct {
	seed    maphash.Seed
	entries []indexEntry
}

type indexEntry struct {
	h        uint64
	citizens int64
	bucket   uint8
	seen     bool
}

func newVerdictIndex(seed maphash.Seed) *verdictIndex { return &verdictIndex{seed: seed} }

func (x *verdictIndex) add(domain string, citizens int64, v result.Verdict) {
	x.entries = append(x.entries, indexEntry{h: maphash.String(x.seed, domain), citizens: citizens, bucket: uint8(bucket(v))})
}

func (x *verdictIndex) sort() {
	slices.SortFunc(x.entries, func(a, b indexEntry) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
}

// findHash returns the entry with hash h or nil.
func (x *verdictIndex) findHash(h uint64) *indexEntry {
	i := sort.Search(len(x.entries), func(i int) bool { return x.entries[i].h >= h })
	if i < len(x.entries) && x.entries[i].h == h {
		return &x.entries[i]
	}
	return nil
}

func loadPrevious(ctx context.Context, st *store.Store, run store.Run, seed maphash.Seed) (*verdictIndex, *TrendPoint, error) {
	x := newVerdictIndex(seed)
	p := &TrendPoint{Run: run, Verdicts: make([]Count, nBuckets)}
	err := st.RunDomains(ctx, run.ID, func(d store.RunDomain) error {
		x.add(d.Domain, d.Citizens, d.Verdict)
		p.Total.add(d.Citizens)
		p.Verdicts[bucket(d.Verdict)].add(d.Citizens)
		return ctx.Err()
	})
	if err != nil {
		return nil, nil, fmt.Errorf("report: previous run %d: %w", run.ID, err)
	}
	x.sort()
	return x, p, nil
}

// comparable reports whether a verdict says something about TLS that can be
// compared across runs.
func comparable(v result.Verdict) bool { return v.Valid() && !v.Temporary() }
