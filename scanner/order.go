package scanner

import (
	"cmp"
	"slices"
)

// SpreadOrder reorders domains in place into a pseudo-random order fixed by
// seed (a run scans, and a resumed run goes on, in the same order), as ZMap
// randomises its targets. Registers come sorted by name, and domains whose
// names sort together are often customers of one hoster: scanned in that
// order they reach the hoster's IP together and queue there (an IP sees one
// connection at a time), and a hoster whose customers come late in the run
// holds up its end. Spread over the run, each hoster's queue starts early
// and stays short.
func SpreadOrder(domains []string, seed uint64) {
	type keyed struct {
		k uint64
		d string
	}
	ks := make([]keyed, len(domains))
	for i, d := range domains {
		ks[i] = keyed{spreadKey(seed, d), d}
	}
	slices.SortFunc(ks, func(x, y keyed) int { return cmp.Or(cmp.Compare(x.k, y.k), cmp.Compare(x.d, y.d)) })
	for i := range ks {
		domains[i] = ks[i].d
	}
}

// spreadKey hashes seed and s (FNV-1a, then the splitmix64 finaliser so
// that names differing in their last characters land far apart).
func spreadKey(seed uint64, s string) uint64 {
	h := uint64(14695981039346656037) ^ seed
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
