package register

import (
	"cmp"
	"hash/maphash"
	"math"
	"slices"
)

// Duplicate is an entry that repeats an earlier entry's ID or address: both
// by line number, never by content.
type Duplicate struct {
	Line  int64 `json:"line"`  // the repeating line
	First int64 `json:"first"` // the earliest line with the same ID or address
}

// Finding duplicates among millions of entries with one hash table would
// cost a cache miss per entry. Instead each entry's keyed hash and line are
// appended to one of dupParts partitions by the hash's top bits (sequential
// writes), and at the end of the input each partition is checked with a
// small table that stays in cache. Memory: 12 bytes per entry and kind.
const (
	dupPartBits  = 8
	dupParts     = 1 << dupPartBits
	dupChunkRecs = 1024
)

// dupRec is a hash and the line it was seen on.
type dupRec struct {
	lo, hi, line uint32
}

func (d dupRec) hash() uint64 { return uint64(d.hi)<<32 | uint64(d.lo) }

// dupLog holds the records of one kind (IDs or addresses), partitioned, each
// partition in line order.
type dupLog struct {
	parts [dupParts][][]dupRec
}

func (l *dupLog) add(h uint64, line int64) {
	p := &l.parts[h>>(64-dupPartBits)]
	if n := len(*p); n == 0 || len((*p)[n-1]) == dupChunkRecs {
		*p = append(*p, make([]dupRec, 0, dupChunkRecs))
	}
	c := &(*p)[len(*p)-1]
	*c = append(*c, dupRec{lo: uint32(h), hi: uint32(h >> 32), line: uint32(line)})
}

// each calls fn for every record that repeats an earlier record's hash, in
// line order within a partition, with the line of the first, and frees the
// records.
func (l *dupLog) each(fn func(line, first int64)) {
	var table []dupRec // open addressing, linear probing, at most half full
	for pi := range l.parts {
		p := l.parts[pi]
		l.parts[pi] = nil
		n := 0
		for _, c := range p {
			n += len(c)
		}
		if n == 0 {
			continue
		}
		size := 1 << 10
		for size < 2*n {
			size <<= 1
		}
		if cap(table) < size {
			table = make([]dupRec, size)
		}
		table = table[:size]
		clear(table)
		mask := uint64(size - 1)
		for _, c := range p {
			for _, r := range c {
				for i := r.hash() & mask; ; i = (i + 1) & mask {
					s := &table[i]
					if s.line == 0 { // lines start at 1: an empty slot
						*s = r
						break
					}
					if s.lo == r.lo && s.hi == r.hi {
						fn(int64(r.line), int64(s.line))
						break
					}
				}
			}
		}
	}
}

// dupFinder finds entries that repeat an earlier entry's ID or address.
type dupFinder struct {
	seed     maphash.Seed // per Reader: hashes mean nothing outside it
	ids      *dupLog      // nil until the register is known to have an id column
	addrs    dupLog
	addrHash maphash.Hash
	tooLong  bool // a line number above 4294967295: detection given up
}

func newDupFinder() *dupFinder {
	f := &dupFinder{seed: maphash.MakeSeed()}
	f.addrHash.SetSeed(f.seed)
	return f
}

// hashAddress returns the hash of local@domain: the local part as written
// (RFC 5321 §2.4: it is case-sensitive), the domain in its normalised A-label
// form.
func hashAddress[T string | []byte](f *dupFinder, local T, domain string) uint64 {
	f.addrHash.Reset()
	switch l := any(local).(type) {
	case string:
		f.addrHash.WriteString(l)
	case []byte:
		f.addrHash.Write(l)
	}
	f.addrHash.WriteByte('@')
	f.addrHash.WriteString(domain)
	return f.addrHash.Sum64()
}

// record notes the entry e of the current line, whose address hashes to
// addr. IDs are recorded only when the register has an id column: line
// numbers are unique.
func (r *Reader) recordDup(e Entry, addr uint64, idColumn bool) {
	f := r.dups
	line := r.st.Lines
	if f.tooLong || line > math.MaxUint32 {
		f.tooLong = true
		return
	}
	f.addrs.add(addr, line)
	if idColumn {
		if f.ids == nil {
			f.ids = new(dupLog)
		}
		f.ids.add(maphash.String(f.seed, e.ID), line)
	}
}

// finishDups counts the duplicates at the end of the input. An entry whose
// ID repeats an earlier one is a duplicate ID, and only that: the store keeps
// one recipient per ID. An entry with a new ID whose address repeats an
// earlier entry's is a duplicate address: it stays a recipient of its own.
func (r *Reader) finishDups() {
	f := r.dups
	if f == nil {
		return
	}
	r.dups = nil // the records go with it
	if f.tooLong {
		return
	}
	firstK := func(dst *[]Duplicate, d Duplicate) {
		*dst = append(*dst, d)
		if len(*dst) >= 4*max(r.maxBad, 16) {
			*dst = smallest(*dst, r.maxBad)
		}
	}
	var dupID []uint64 // bit per line: the line's ID is a duplicate
	if f.ids != nil {
		f.ids.each(func(line, first int64) {
			if dupID == nil {
				dupID = make([]uint64, r.st.Lines/64+1)
			}
			dupID[line/64] |= 1 << (line % 64)
			r.st.DuplicateIDs++
			firstK(&r.st.DuplicateIDLines, Duplicate{Line: line, First: first})
		})
	}
	f.addrs.each(func(line, first int64) {
		if dupID != nil && dupID[line/64]&(1<<(line%64)) != 0 {
			return
		}
		r.st.DuplicateAddresses++
		firstK(&r.st.DuplicateAddressLines, Duplicate{Line: line, First: first})
	})
	r.st.DuplicateIDLines = smallest(r.st.DuplicateIDLines, r.maxBad)
	r.st.DuplicateAddressLines = smallest(r.st.DuplicateAddressLines, r.maxBad)
}

// smallest returns the k duplicates with the lowest lines, ascending; nil
// when there are none or k < 0.
func smallest(ds []Duplicate, k int) []Duplicate {
	if len(ds) == 0 || k < 0 {
		return nil
	}
	slices.SortFunc(ds, func(a, b Duplicate) int { return cmp.Compare(a.Line, b.Line) })
	return ds[:min(len(ds), k)]
}
