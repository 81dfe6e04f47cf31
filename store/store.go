// Package store keeps scan runs, recipients and per-domain results in SQLite
// (mattn/go-sqlite3, WAL). It is the cache that lookup, report and the
// gateway read while a batch scan writes.
//
// CONTRACT FILE: the signatures below are what the rest of the code calls.
// The bodies are stubs until the store implementation lands.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// Sentinel errors.
var (
	ErrLocked   = errors.New("store: another scan holds the lock on this database")
	ErrNotFound = errors.New("store: not found")
	ErrReadOnly = errors.New("store: database opened read-only")
)

// Store is a handle on one database file. Safe for concurrent use.
type Store struct{}

// Options for Open.
type Options struct {
	ReadOnly bool // open with mode=ro; never migrates, never writes
}

// Open opens (creating with mode 0600 and migrating when needed) the database at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) { panic("unimplemented") }

// Close closes the database.
func (s *Store) Close() error { panic("unimplemented") }

// Path is the database file name.
func (s *Store) Path() string { panic("unimplemented") }

// LockScan takes the exclusive scan lock (flock on "<path>.lock", created 0600)
// without waiting. It returns ErrLocked when another process holds it.
func (s *Store) LockScan() (unlock func() error, err error) { panic("unimplemented") }

// Run is one scan run.
type Run struct {
	ID         int64     `json:"id"`
	Input      string    `json:"input"` // input identity: file name + size + mtime, or "-"
	Status     string    `json:"status"` // "running", "finished", "aborted"
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Stats      RunStats  `json:"stats"`
}

// RunStats are a run's counters, stored as JSON with the run.
type RunStats struct {
	Lines          int64            `json:"lines"`
	Recipients     int64            `json:"recipients"`
	BadLines       int64            `json:"bad_lines"`
	BadByReason    map[string]int64 `json:"bad_by_reason,omitempty"`
	Domains        int64            `json:"domains"`
	Scanned        int64            `json:"scanned"`         // domains scanned in this run
	Reused         int64            `json:"reused"`          // fresh cached results reused
	MXIPs          int64            `json:"mx_ips"`          // distinct MX IPs probed
	Connections    int64            `json:"connections"`     // SMTP connections made
	DNSQueries     int64            `json:"dns_queries"`
	Resolver       string           `json:"resolver,omitempty"`
	TrustAD        bool             `json:"trust_ad,omitempty"`
	ScannerVersion string           `json:"scanner_version,omitempty"`
	Vantage        string           `json:"vantage,omitempty"` // HELO name / host the scan ran from
}

// BeginRun resumes the latest run with status "running" and the same input
// (resumed=true), or starts a new run.
func (s *Store) BeginRun(ctx context.Context, input string, now time.Time) (run Run, resumed bool, err error) {
	panic("unimplemented")
}

// FinishRun marks the run finished, stores stats, and snapshots, for every
// domain with recipients in this run, its citizen count and current verdict
// and flags into the run's history (RunDomains).
func (s *Store) FinishRun(ctx context.Context, runID int64, stats RunStats, now time.Time) error {
	panic("unimplemented")
}

// AbortRun marks a run aborted (e.g. port 25 blocked); its results are not used.
func (s *Store) AbortRun(ctx context.Context, runID int64, reason string) error { panic("unimplemented") }

// Runs lists all runs, oldest first.
func (s *Store) Runs(ctx context.Context) ([]Run, error) { panic("unimplemented") }

// GetRun returns one run or ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id int64) (Run, error) { panic("unimplemented") }

// LatestFinishedRun returns the newest finished run or ErrNotFound.
func (s *Store) LatestFinishedRun(ctx context.Context) (Run, error) { panic("unimplemented") }

// Recipient is one line of the register. Address is empty unless the scan
// was asked to keep addresses (--keep-addresses).
type Recipient struct {
	ID      string
	Domain  string // A-label
	Address string
}

// AddRecipients upserts a batch of recipients (keyed by ID) and marks them as
// seen in runID. Idempotent, so a resumed run can re-add them.
func (s *Store) AddRecipients(ctx context.Context, runID int64, rs []Recipient) error {
	panic("unimplemented")
}

// PendingDomains returns the domains with recipients seen in runID that have
// no result saved in runID and whose latest result is older than freshSince
// (zero freshSince: every domain without a result in this run).
func (s *Store) PendingDomains(ctx context.Context, runID int64, freshSince time.Time) ([]string, error) {
	panic("unimplemented")
}

// CountRunDomains counts the distinct domains with recipients in runID.
func (s *Store) CountRunDomains(ctx context.Context, runID int64) (int64, error) {
	panic("unimplemented")
}

// SaveResults upserts domain results in one transaction. A result whose
// verdict is Temporary() (unreachable, dns-error) never overwrites a stored
// non-temporary result younger than keepFor... (see implementation notes).
func (s *Store) SaveResults(ctx context.Context, rs []result.Result) error { panic("unimplemented") }

// Lookup returns the latest result for a domain (A-label) or ErrNotFound.
func (s *Store) Lookup(ctx context.Context, domain string) (result.Result, error) {
	panic("unimplemented")
}

// RunDomain is one row of a run's history.
type RunDomain struct {
	Domain   string
	Citizens int64
	Verdict  result.Verdict
	Flags    []string
}

// RunDomains calls fn for every domain of a finished run, most citizens first.
func (s *Store) RunDomains(ctx context.Context, runID int64, fn func(RunDomain) error) error {
	panic("unimplemented")
}

// Results calls fn with the full latest result of every domain in the
// database (or only those of runID when runID > 0), in domain order.
func (s *Store) Results(ctx context.Context, runID int64, fn func(result.Result) error) error {
	panic("unimplemented")
}

// RecipientsByVerdict calls fn for each recipient seen in runID whose domain
// had one of the verdicts in that run.
func (s *Store) RecipientsByVerdict(ctx context.Context, runID int64, verdicts []result.Verdict, fn func(Recipient, result.Verdict) error) error {
	panic("unimplemented")
}

// DataVersion is a number that changes whenever domain results change
// (the gateway polls it to refresh its in-memory cache).
func (s *Store) DataVersion(ctx context.Context) (int64, error) { panic("unimplemented") }

// STSCache is a cached MTA-STS policy (RFC 8461 §5.1).
type STSCache struct {
	Domain    string
	RecordID  string
	Policy    string // the policy text as fetched
	FetchedAt time.Time
	MaxAge    time.Duration
}

// GetSTSPolicy returns the cached policy of a domain or ErrNotFound.
func (s *Store) GetSTSPolicy(ctx context.Context, domain string) (STSCache, error) {
	panic("unimplemented")
}

// PutSTSPolicy stores a fetched policy.
func (s *Store) PutSTSPolicy(ctx context.Context, p STSCache) error { panic("unimplemented") }

// Writer batches results from many goroutines into few transactions.
// It is the only writer of results during a scan.
type Writer struct{}

// NewWriter starts a writer that commits every batch results or every interval.
func (s *Store) NewWriter(batch int, interval time.Duration) *Writer { panic("unimplemented") }

// Add queues a result; it blocks when the queue is full.
func (w *Writer) Add(r result.Result) { panic("unimplemented") }

// Close flushes what is queued and returns the first write error.
func (w *Writer) Close() error { panic("unimplemented") }

// Err returns the first write error so far (nil if none).
func (w *Writer) Err() error { panic("unimplemented") }
