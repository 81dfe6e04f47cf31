package gateway

import (
	"hash/maphash"
	"math"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// record is one domain's cached answer. Its strings are substrings of the
// table's arenas and its Flags slice is shared: treat it as read-only.
type record struct {
	Domain    string
	Verdict   result.Verdict
	Flags     []string
	ScannedAt time.Time
	MX        string // MX host names joined with ','; "" when none
	STSMatch  string // Postfix match= list of an enforced MTA-STS policy ("" when none or unusable)
}

// entry is the compact form of a record: 32 bytes and no pointers, so that a
// table of a million domains costs the garbage collector almost nothing.
type entry struct {
	scanned int64  // ScannedAt, Unix nanoseconds
	name    uint32 // offset of the domain name in table.names
	mx      uint32 // offset of the MX list in table.strs
	sts     uint32 // offset of the STS match list in table.strs
	flags   uint32 // index into table.flagSets
	mxLen   uint16
	stsLen  uint16
	nameLen uint8
	verdict uint8 // index into result.Verdicts
	_       [2]byte
}

// table is an immutable snapshot of every domain's record: an open-addressing
// hash index over pointer-free arrays. Safe for concurrent reads.
type table struct {
	seed     maphash.Seed
	slots    []uint32 // len is a power of two; 0 empty, else entry index + 1
	entries  []entry
	names    string // all domain names, concatenated
	strs     string // interned MX and STS lists, concatenated
	flagSets [][]string

	version  int64     // store.DataVersion the snapshot was read at
	loadedAt time.Time // when loading finished
	loadTook time.Duration
	newest   int64 // newest ScannedAt (Unix nanoseconds), 0 when empty
	count    int   // distinct domains
	skipped  int   // results that could not be represented
}

func (t *table) len() int {
	if t == nil {
		return 0
	}
	return t.count
}

// get returns the record of an A-label domain name.
func (t *table) get(domain string) (record, bool) {
	if t == nil || len(t.slots) == 0 {
		return record{}, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := maphash.String(t.seed, domain) & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return record{}, false
		}
		e := &t.entries[s-1]
		if t.names[e.name:e.name+uint32(e.nameLen)] == domain {
			return t.record(e), true
		}
	}
}

func (t *table) record(e *entry) record {
	return record{
		Domain:    t.names[e.name : e.name+uint32(e.nameLen)],
		Verdict:   result.Verdicts[e.verdict],
		Flags:     t.flagSets[e.flags],
		ScannedAt: time.Unix(0, e.scanned).UTC(),
		MX:        t.strs[e.mx : e.mx+uint32(e.mxLen)],
		STSMatch:  t.strs[e.sts : e.sts+uint32(e.stsLen)],
	}
}

// builder accumulates results into a new table.
type builder struct {
	entries  []entry
	names    strings.Builder
	strs     strings.Builder
	strIdx   map[string]uint32
	flagSets [][]string
	flagIdx  map[string]uint32
	newest   int64
	skipped  int
}

func newBuilder(sizeHint int) *builder {
	b := &builder{
		entries:  make([]entry, 0, sizeHint),
		strIdx:   map[string]uint32{"": 0},
		flagSets: [][]string{{}},
		flagIdx:  map[string]uint32{"": 0},
	}
	b.names.Grow(sizeHint * 16)
	return b
}

// add adds one result; a later result for the same domain replaces an
// earlier one. It reports false when the result cannot be represented
// (invalid verdict or domain, arena overflow); the caller counts it.
func (b *builder) add(r result.Result) bool {
	return b.addRecord(recordOf(r))
}

// recordOf extracts what the gateway answers from a full result.
func recordOf(r result.Result) record {
	mx := make([]string, 0, len(r.MX))
	for _, h := range r.MX {
		if h.Name != "" && !strings.ContainsRune(h.Name, ',') {
			mx = append(mx, h.Name)
		}
	}
	return record{
		Domain:    r.Domain,
		Verdict:   r.Verdict,
		Flags:     r.Flags,
		ScannedAt: r.ScannedAt,
		MX:        joinBounded(mx, ","),
		STSMatch:  stsMatch(r.MTASTS),
	}
}

func (b *builder) addRecord(rec record) bool {
	v := rec.Verdict.Rank()
	d, err := NormalizeDomain(rec.Domain)
	if v >= len(result.Verdicts) || err != nil || d != rec.Domain ||
		b.names.Len()+len(d) > math.MaxUint32 || b.strs.Len()+len(rec.MX)+len(rec.STSMatch) > math.MaxUint32 ||
		len(b.entries) >= math.MaxUint32-1 {
		b.skipped++
		return false
	}
	e := entry{
		scanned: rec.ScannedAt.UnixNano(),
		name:    uint32(b.names.Len()),
		nameLen: uint8(len(d)),
		verdict: uint8(v),
		flags:   b.internFlags(rec.Flags),
	}
	if rec.ScannedAt.IsZero() {
		e.scanned = 0
	}
	b.names.WriteString(d)
	e.mx, e.mxLen = b.intern(rec.MX)
	e.sts, e.stsLen = b.intern(rec.STSMatch)
	b.entries = append(b.entries, e)
	b.newest = max(b.newest, e.scanned)
	return true
}

// intern stores s once in the string arena (many domains share their
// provider's MX list). s is at most math.MaxUint16 bytes (joinBounded).
func (b *builder) intern(s string) (uint32, uint16) {
	if off, ok := b.strIdx[s]; ok {
		return off, uint16(len(s))
	}
	off := uint32(b.strs.Len())
	b.strs.WriteString(s)
	b.strIdx[s] = off
	return off, uint16(len(s))
}

func (b *builder) internFlags(flags []string) uint32 {
	key := strings.Join(flags, " ")
	if i, ok := b.flagIdx[key]; ok {
		return i
	}
	i := uint32(len(b.flagSets))
	b.flagSets = append(b.flagSets, append([]string(nil), flags...))
	b.flagIdx[key] = i
	return i
}

// finish builds the hash index. The builder must not be used afterwards.
func (b *builder) finish() *table {
	t := &table{
		seed:     maphash.MakeSeed(),
		entries:  b.entries,
		names:    b.names.String(),
		strs:     b.strs.String(),
		flagSets: b.flagSets,
		newest:   b.newest,
		skipped:  b.skipped,
	}
	n := 16
	for n < 2*len(t.entries) { // load factor at most 1/2
		n *= 2
	}
	t.slots = make([]uint32, n)
	mask := uint64(n - 1)
	for idx := range t.entries {
		e := &t.entries[idx]
		name := t.names[e.name : e.name+uint32(e.nameLen)]
		for i := maphash.String(t.seed, name) & mask; ; i = (i + 1) & mask {
			s := t.slots[i]
			if s == 0 {
				t.slots[i] = uint32(idx + 1)
				t.count++
				break
			}
			o := &t.entries[s-1]
			if t.names[o.name:o.name+uint32(o.nameLen)] == name { // duplicate: the later one wins
				t.slots[i] = uint32(idx + 1)
				break
			}
		}
	}
	return t
}

// joinBounded joins parts with sep, dropping trailing parts that would make
// the result longer than math.MaxUint16 bytes.
func joinBounded(parts []string, sep string) string {
	n := 0
	for i, p := range parts {
		if n+len(sep)+len(p) > math.MaxUint16 {
			parts = parts[:i]
			break
		}
		n += len(sep) + len(p)
	}
	return strings.Join(parts, sep)
}
