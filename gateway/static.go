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
// records and the same mapping (policy), so a static map written from it
// says what the socketmap says at that moment. Stale records and verdicts
// without a policy are left out, as the socketmap's NOTFOUND. The cache
// must have been loaded (Refresh); ErrNotReady otherwise.
func (s *Server) Policies(fn func(domain, policy string) error) error {
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
	slices.Sort(names)
	for _, d := range names {
		rec, ok := s.get(d)
		if !ok {
			continue
		}
		p := s.policy(rec, s.stale(rec.ScannedAt, now))
		if p == "" {
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
