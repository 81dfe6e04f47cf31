package smtpprobe

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// DefaultChainCacheSize is the number of chains a ChainCache holds when
// NewChainCache is given 0.
const DefaultChainCacheSize = 100_000

// ChainCache remembers, per distinct presented certificate chain, its
// CertInfo summaries and its judgement against the roots (see Config.ChainCache).
// Time-dependent facts (Expired, NotYetValid) are recomputed for every probe
// from the remembered validity periods; whether the chain is trusted is
// decided once, at a time inside its validity, as without the cache. Use one
// cache with one set of roots, for one run. Safe for concurrent use.
type ChainCache struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]*chainEntry
}

// NewChainCache returns a cache of at most max chains (0: DefaultChainCacheSize).
// When full, new chains are judged but not remembered.
func NewChainCache(max int) *ChainCache {
	if max <= 0 {
		max = DefaultChainCacheSize
	}
	return &ChainCache{max: max, m: make(map[[32]byte]*chainEntry)}
}

// Len is the number of chains remembered.
func (c *ChainCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// chainEntry is the host-independent judgement of one chain. Read-only once stored.
type chainEntry struct {
	certs          []result.CertInfo
	trusted        bool
	chainErr       string
	selfSigned     bool
	leafNB, leafNA time.Time
	pathNB, pathNA time.Time // latest NotBefore, earliest NotAfter of the verified path
	allNames       []string  // the leaf's DNS names when certs[0] holds a truncated list
}

func chainKey(certs []*x509.Certificate) [32]byte {
	h := sha256.New()
	var n [4]byte
	for _, c := range certs {
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *ChainCache) get(k [32]byte) *chainEntry {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *ChainCache) put(k [32]byte, e *chainEntry) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) < c.max {
		c.m[k] = e
	}
}

// apply fills info from e for a probe at now.
func (e *chainEntry) apply(info *result.TLSInfo, now time.Time) {
	info.Certs = make([]result.CertInfo, len(e.certs))
	for i, ci := range e.certs {
		ci.DNSNames = slices.Clone(ci.DNSNames)
		info.Certs[i] = ci
	}
	info.AllNames = e.allNames // shared, read-only
	info.ChainTrusted = e.trusted
	info.ChainError = e.chainErr
	info.SelfSigned = e.selfSigned
	info.Expired = now.After(e.leafNA)
	info.NotYetValid = now.Before(e.leafNB)
	if e.trusted {
		info.Expired = info.Expired || now.After(e.pathNA)
		info.NotYetValid = info.NotYetValid || now.Before(e.pathNB)
	}
}
