package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/mtasts"
)

// STSIndex is the MTA-STS policy cache as a scan uses it: the Store's
// GetSTSPolicy and PutSTSPolicy, with the set of domains that have a cached
// policy read once, when the index is made. A domain outside the set is
// ErrNotFound without a query.
//
// Most domains have no cached policy, and the scanner asks for one for
// every domain without a live policy (RFC 8461 §5.1): a query per domain
// (prepared, run, finalised), about 15 µs of CPU in a busy scan and 200 µs
// at --rate 20, where every query meets a cold process (issue 10).
//
// A policy another process stores after the index was made is not seen
// until the next index (the next run); the policies this index stores are.
// The set costs about 80 bytes per cached domain.
type STSIndex struct {
	s   *Store
	mu  sync.RWMutex
	has map[string]struct{}
}

// STSIndex reads the domains with a cached MTA-STS policy.
func (s *Store) STSIndex(ctx context.Context) (*STSIndex, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT domain FROM sts_policies`)
	if err != nil {
		return nil, fmt.Errorf("store: sts policies: %w", err)
	}
	defer rows.Close()
	x := &STSIndex{s: s, has: map[string]struct{}{}}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("store: sts policies: %w", err)
		}
		x.has[d] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sts policies: %w", err)
	}
	return x, nil
}

// GetSTSPolicy is Store.GetSTSPolicy; ErrNotFound without a query for a
// domain that had no cached policy when the index was made and has not
// been stored through it since.
func (x *STSIndex) GetSTSPolicy(ctx context.Context, domain string) (mtasts.CachedPolicy, error) {
	d := dnsname.Key(domain)
	x.mu.RLock()
	_, ok := x.has[d]
	x.mu.RUnlock()
	if !ok {
		return mtasts.CachedPolicy{}, ErrNotFound
	}
	return x.s.GetSTSPolicy(ctx, d)
}

// PutSTSPolicy is Store.PutSTSPolicy, and adds the domain to the index.
func (x *STSIndex) PutSTSPolicy(ctx context.Context, p mtasts.CachedPolicy) error {
	if err := x.s.PutSTSPolicy(ctx, p); err != nil {
		return err
	}
	x.mu.Lock()
	x.has[dnsname.Key(p.Domain)] = struct{}{}
	x.mu.Unlock()
	return nil
}

// Len is the number of domains in the index.
func (x *STSIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.has)
}

// GetSTSPolicy returns the cached policy of a domain or ErrNotFound.
func (s *Store) GetSTSPolicy(ctx context.Context, domain string) (mtasts.CachedPolicy, error) {
	var (
		p       mtasts.CachedPolicy
		fetched sql.NullInt64
		maxAge  int64
	)
	err := s.r.QueryRowContext(ctx, s.q(`SELECT domain, record_id, policy, fetched_at, max_age FROM sts_policies WHERE domain = ?`),
		dnsname.Key(domain)).Scan(&p.Domain, &p.RecordID, &p.Policy, &fetched, &maxAge)
	if errors.Is(err, sql.ErrNoRows) {
		return mtasts.CachedPolicy{}, ErrNotFound
	}
	if err != nil {
		return mtasts.CachedPolicy{}, fmt.Errorf("store: sts policy: %w", err)
	}
	p.FetchedAt, p.MaxAge = fromNS(fetched), time.Duration(maxAge)
	return p, nil
}

// PutSTSPolicy stores a fetched policy.
// It replaces the domain's previous policy.
func (s *Store) PutSTSPolicy(ctx context.Context, p mtasts.CachedPolicy) error {
	if s.readOnly {
		return ErrReadOnly
	}
	d := dnsname.Key(p.Domain)
	if d == "" {
		return errors.New("store: sts policy without domain")
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO sts_policies(domain, record_id, policy, fetched_at, max_age) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(domain) DO UPDATE SET record_id = excluded.record_id, policy = excluded.policy,
			fetched_at = excluded.fetched_at, max_age = excluded.max_age`),
		d, p.RecordID, p.Policy, nsOrNil(p.FetchedAt), int64(p.MaxAge))
	if err != nil {
		return fmt.Errorf("store: put sts policy: %w", err)
	}
	return nil
}
