package gateway

import (
	"encoding/binary"
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
	STSMatch  string // Postfix match= list of an enforced MTA-STS policy ("" when none or unusable); see prevOf
	Prev      uint8  // the previous observation's class plus one, 0 for none (see policyPending)
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
	verdict uint8 // index into result.Verdicts; tombstone in a delta (or a base a delta was patched into)
	inBase  bool  // delta entries: the base holds a record (not a tombstone) of the domain
	prev    uint8 // record.Prev
}

// tombstone is the verdict of a delta entry that removes a domain from the
// cache: its new stored result cannot be represented (see item).
const tombstone = math.MaxUint8

// table is an immutable set of domain records (see snapshot): an
// open-addressing hash index over pointer-free arrays. Safe for concurrent
// reads.
type table struct {
	seed     maphash.Seed
	slots    []uint32 // len is a power of two; 0 empty, else entry index + 1
	entries  []entry
	names    string // all domain names, concatenated
	strs     string // interned MX and STS lists, concatenated
	flagSets [][]string

	newest  int64 // newest ScannedAt (Unix nanoseconds), 0 when empty
	count   int   // distinct domains (tombstones included)
	live    int   // distinct domains with a record (tombstones excluded)
	skipped int   // results that could not be represented

	// An estimate of the bytes of strs that no entry uses any more (see
	// patch); compact says when a rebuild should drop them.
	garbage int
}

// len is the number of domains the table has a record of.
func (t *table) len() int {
	if t == nil {
		return 0
	}
	return t.live
}

// get returns the record of an A-label domain name.
func (t *table) get(domain string) (record, bool) {
	e := t.find(domain)
	if e == nil || e.verdict == tombstone {
		return record{}, false
	}
	return t.record(e), true
}

// find returns the entry of a domain (a tombstone included), nil for none.
func (t *table) find(domain string) *entry {
	if t == nil || len(t.slots) == 0 {
		return nil
	}
	return t.findHash(domain, maphash.String(t.seed, domain))
}

// findHash is find with the domain's hash under the table's seed.
func (t *table) findHash(domain string, h uint64) *entry {
	if i := t.index(domain, h); i >= 0 {
		return &t.entries[i]
	}
	return nil
}

// index returns the position in entries of a domain's entry, -1 for none.
func (t *table) index(domain string, h uint64) int {
	if t == nil || len(t.slots) == 0 {
		return -1
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if e := &t.entries[s-1]; t.name(e) == domain {
			return int(s - 1)
		}
	}
}

func (t *table) name(e *entry) string { return t.names[e.name : e.name+uint32(e.nameLen)] }

// each calls fn with every entry the index holds (not those a later
// duplicate replaced), tombstones included.
func (t *table) each(fn func(e *entry)) {
	if t == nil {
		return
	}
	if t.count == len(t.entries) { // no duplicates: in order, without the index
		for i := range t.entries {
			fn(&t.entries[i])
		}
		return
	}
	for _, s := range t.slots {
		if s != 0 {
			fn(&t.entries[s-1])
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
		Prev:      e.prev,
	}
}

// builder accumulates results into a new table.
type builder struct {
	entries  []entry
	names    strings.Builder
	strs     strings.Builder
	strIdx   map[string]uint32
	flagSets [][]string
	flagIdx  map[string]uint32 // flagKey of a set -> index
	newest   int64
	skipped  int
	garbage  int

	keyBuf []byte
	from   *table  // the table copyEntry last copied from
	remap  []int32 // its flag set indexes -> ours (-1: not yet interned)
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

// builderFrom returns a builder that starts with everything t holds, its
// entries in their places (superseded ones too) and its arenas copied
// whole, with room for about more entries: the cheap start of a delta's
// copy on write. Strings added later are interned with those t's indexed
// entries use.
func builderFrom(t *table, more int) *builder {
	b := newBuilder(0)
	if t == nil {
		b.entries = make([]entry, 0, more)
		return b
	}
	b.entries = make([]entry, len(t.entries), len(t.entries)+more)
	copy(b.entries, t.entries)
	b.names.Grow(len(t.names) + more*16)
	b.names.WriteString(t.names)
	b.strs.Grow(len(t.strs))
	b.strs.WriteString(t.strs)
	b.flagSets = append(make([][]string, 0, len(t.flagSets)+4), t.flagSets...)
	for i, f := range t.flagSets[1:] {
		b.flagIdx[string(appendFlagKey(nil, f))] = uint32(i + 1)
	}
	b.newest, b.garbage = t.newest, t.garbage
	t.each(func(e *entry) {
		if e.verdict == tombstone {
			return
		}
		for _, r := range [2]struct {
			off uint32
			n   uint16
		}{{e.mx, e.mxLen}, {e.sts, e.stsLen}} {
			if r.n > 0 {
				k := t.strs[r.off : r.off+uint32(r.n)]
				if _, ok := b.strIdx[k]; !ok {
					b.strIdx[k] = r.off
				}
			}
		}
	})
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
	if v >= len(result.Verdicts) || err != nil || d != rec.Domain || !b.fits(len(d), len(rec.MX)+len(rec.STSMatch)) {
		b.skipped++
		return false
	}
	e := entry{
		scanned: rec.ScannedAt.UnixNano(),
		name:    uint32(b.names.Len()),
		nameLen: uint8(len(d)),
		verdict: uint8(v),
		flags:   b.internFlags(rec.Flags),
		prev:    rec.Prev,
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
	if s == "" {
		return 0, 0
	}
	if off, ok := b.strIdx[s]; ok {
		return off, uint16(len(s))
	}
	off := uint32(b.strs.Len())
	b.strs.WriteString(s)
	b.strIdx[s] = off
	return off, uint16(len(s))
}

func (b *builder) internFlags(flags []string) uint32 {
	b.keyBuf = appendFlagKey(b.keyBuf[:0], flags)
	return b.internFlagKey(b.keyBuf)
}

// internFlagKey interns the flag set of a flagKey.
func (b *builder) internFlagKey(key []byte) uint32 {
	if i, ok := b.flagIdx[string(key)]; ok {
		return i
	}
	i := uint32(len(b.flagSets))
	b.flagSets = append(b.flagSets, parseFlagKey(key))
	b.flagIdx[string(key)] = i
	return i
}

// appendFlagKey appends the key of a flag set: each flag preceded by its
// length (uvarint), so that no two sets share a key.
func appendFlagKey(key []byte, flags []string) []byte {
	for _, f := range flags {
		key = binary.AppendUvarint(key, uint64(len(f)))
		key = append(key, f...)
	}
	return key
}

// parseFlagKey is the inverse of appendFlagKey (an empty set is non-nil).
func parseFlagKey(key []byte) []string {
	flags := []string{}
	for len(key) > 0 {
		n, w := binary.Uvarint(key)
		if w <= 0 || uint64(len(key)-w) < n {
			break // not a key appendFlagKey wrote
		}
		flags = append(flags, string(key[w:w+int(n)]))
		key = key[w+int(n):]
	}
	return flags
}

// internBytes is intern for a byte slice (no allocation when s is known).
func (b *builder) internBytes(s []byte) (uint32, uint16) {
	if len(s) == 0 {
		return 0, 0
	}
	if off, ok := b.strIdx[string(s)]; ok {
		return off, uint16(len(s))
	}
	return b.intern(string(s))
}

// addItem adds a decoded result (a tombstone too: for a delta). It reports
// false when the item is not representable (arena overflow).
func (b *builder) addItem(it *item, arena []byte) bool {
	if !b.fits(len(it.domain), int(it.mxEnd-it.mxOff)+int(it.stsEnd-it.stsOff)) {
		b.skipped++
		return false
	}
	e := entry{scanned: it.scanned, name: uint32(b.names.Len()), nameLen: uint8(len(it.domain)), verdict: it.verdict, prev: it.prev}
	b.names.WriteString(it.domain)
	if it.verdict != tombstone {
		e.flags = b.internFlagKey(arena[it.flagsOff:it.flagsEnd])
		e.mx, e.mxLen = b.internBytes(arena[it.mxOff:it.mxEnd])
		e.sts, e.stsLen = b.internBytes(arena[it.stsOff:it.stsEnd])
		b.newest = max(b.newest, e.scanned)
	}
	b.entries = append(b.entries, e)
	return true
}

// copyEntry adds an entry of another table (built by a builder: valid).
func (b *builder) copyEntry(t *table, e *entry) bool {
	if !b.fits(int(e.nameLen), int(e.mxLen)+int(e.stsLen)) {
		b.skipped++
		return false
	}
	if b.from != t {
		b.from = t
		b.remap = make([]int32, len(t.flagSets))
		for i := range b.remap {
			b.remap[i] = -1
		}
	}
	n := *e
	n.name, n.inBase = uint32(b.names.Len()), false
	b.names.WriteString(t.name(e))
	if e.verdict != tombstone {
		if b.remap[e.flags] < 0 {
			b.remap[e.flags] = int32(b.internFlags(t.flagSets[e.flags]))
		}
		n.flags = uint32(b.remap[e.flags])
		n.mx, _ = b.intern(t.strs[e.mx : e.mx+uint32(e.mxLen)])
		n.sts, _ = b.intern(t.strs[e.sts : e.sts+uint32(e.stsLen)])
		b.newest = max(b.newest, n.scanned)
	}
	b.entries = append(b.entries, n)
	return true
}

// fits reports whether a name and strings of these lengths still fit the
// table's 32-bit offsets.
func (b *builder) fits(name, strs int) bool {
	return b.names.Len()+name <= math.MaxUint32 && b.strs.Len()+strs <= math.MaxUint32 &&
		len(b.entries) < math.MaxUint32-1
}

// finish builds the hash index with a new seed. The builder must not be
// used afterwards.
func (b *builder) finish() *table { return b.finishSeed(maphash.MakeSeed()) }

// finishSeed builds the hash index with seed (a delta shares its base's, so
// that a lookup hashes the name once).
func (b *builder) finishSeed(seed maphash.Seed) *table {
	t := &table{
		seed:     seed,
		entries:  b.entries,
		names:    b.names.String(),
		strs:     b.strs.String(),
		flagSets: b.flagSets,
		newest:   b.newest,
		skipped:  b.skipped,
		garbage:  b.garbage,
	}
	t.slots = make([]uint32, slotsFor(len(t.entries)))
	for idx := range t.entries {
		if t.insert(idx, maphash.String(t.seed, t.name(&t.entries[idx]))) {
			t.count++
		}
	}
	t.live = t.count
	t.each(func(e *entry) {
		if e.verdict == tombstone {
			t.live--
		}
	})
	return t
}

// slotsFor is the index size for n entries: a power of two, load factor at
// most 1/2.
func slotsFor(n int) int {
	s := 16
	for s < 2*n {
		s *= 2
	}
	return s
}

// insert indexes entry idx (its name hashing to h) and reports whether the
// name is new; a duplicate replaces the earlier entry (the later one wins).
func (t *table) insert(idx int, h uint64) bool {
	mask := uint64(len(t.slots) - 1)
	name := t.name(&t.entries[idx])
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			t.slots[i] = uint32(idx + 1)
			return true
		}
		if t.name(&t.entries[s-1]) == name {
			t.slots[i] = uint32(idx + 1)
			return false
		}
	}
}

// patch returns base with delta (built with base's seed) applied, for the
// price of copying base's arrays: entries keep their places, so base's
// hash index stays valid and is copied too; a domain the delta replaces or
// removes is overwritten in place (removed: a tombstone), a new one is
// appended and indexed. The delta's string arena is appended whole, so
// strings that replaced entries used, and the delta's own superseded
// entries' strings, become garbage (counted): compact says when a rebuild
// (merge) should drop it. base and delta stay valid for their readers.
func patch(base, delta *table) *table {
	add := 0
	delta.each(func(e *entry) {
		if !e.inBase && e.verdict != tombstone && base.find(delta.name(e)) == nil {
			add++
		}
	})
	n := len(base.entries) + add
	t := &table{
		seed:    base.seed,
		entries: make([]entry, len(base.entries), n),
		newest:  max(base.newest, delta.newest),
		count:   base.count,
		live:    base.live,
		skipped: base.skipped,
		garbage: base.garbage + len(delta.strs),
	}
	copy(t.entries, base.entries)
	var names, strs strings.Builder
	names.Grow(len(base.names) + add*meanNameLen(delta))
	names.WriteString(base.names)
	strs.Grow(len(base.strs) + len(delta.strs))
	strs.WriteString(base.strs)
	strs.WriteString(delta.strs)
	strOff := uint32(len(base.strs))

	// Flag sets: base's, then the delta's that base lacks.
	t.flagSets = append(make([][]string, 0, len(base.flagSets)+len(delta.flagSets)), base.flagSets...)
	idx := make(map[string]uint32, len(base.flagSets))
	for i, f := range base.flagSets {
		idx[string(appendFlagKey(nil, f))] = uint32(i)
	}
	remap := make([]uint32, len(delta.flagSets))
	for i, f := range delta.flagSets {
		k := string(appendFlagKey(nil, f))
		j, ok := idx[k]
		if !ok {
			j = uint32(len(t.flagSets))
			t.flagSets = append(t.flagSets, f)
			idx[k] = j
		}
		remap[i] = j
	}

	grow := len(base.slots) < slotsFor(n)
	if grow {
		t.slots = make([]uint32, slotsFor(n))
	} else {
		t.slots = make([]uint32, len(base.slots))
		copy(t.slots, base.slots)
	}
	delta.each(func(e *entry) {
		name := delta.name(e)
		ne := *e
		ne.inBase = false
		if ne.verdict != tombstone {
			ne.flags = remap[e.flags]
			ne.mx += strOff
			ne.sts += strOff
		}
		i := base.index(name, maphash.String(base.seed, name))
		if i >= 0 {
			old := &t.entries[i]
			switch {
			case old.verdict == tombstone && ne.verdict != tombstone:
				t.live++
			case old.verdict != tombstone && ne.verdict == tombstone:
				t.live--
			}
			ne.name = old.name // the same name, where base has it
			*old = ne
			return
		}
		if ne.verdict == tombstone {
			return // nothing to remove
		}
		ne.name = uint32(names.Len())
		names.WriteString(name)
		t.entries = append(t.entries, ne)
		t.count++
		t.live++
	})
	t.names, t.strs = names.String(), strs.String()
	if grow {
		for i := range t.entries {
			t.insert(i, maphash.String(t.seed, t.name(&t.entries[i])))
		}
	} else {
		for i := len(base.entries); i < len(t.entries); i++ {
			t.insert(i, maphash.String(t.seed, t.name(&t.entries[i])))
		}
	}
	return t
}

// meanNameLen is the mean name length of a table (rounded up), for growing
// an arena.
func meanNameLen(t *table) int {
	if len(t.entries) == 0 {
		return 16
	}
	return len(t.names)/len(t.entries) + 1
}

// compact reports whether a patched table has gathered enough garbage that
// a rebuild should drop it: an estimated third of its arenas, or an eighth
// of its entries removed (tombstones).
func (t *table) compact() bool {
	return t.garbage > (len(t.names)+len(t.strs))/3 || t.count-t.live > t.count/8
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
