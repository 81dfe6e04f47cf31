package gateway

import (
	"context"
	"hash/maphash"
	"math"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// snapshot is what lookups read: an immutable table of every domain as of a
// full load, and an immutable delta table of the results changed since (nil
// when none; a tombstone entry hides a base record). A change of the store
// replaces the delta (copy on write: the old delta's entries plus the
// changes); once the delta outgrows mergeAt, base and delta are merged into
// a new base in memory. Safe for concurrent reads.
type snapshot struct {
	base, delta *table

	version  int64         // store data version the snapshot holds every result of
	loadedAt time.Time     // when the last load or update finished
	loadTook time.Duration // how long the last full load took
	newest   int64         // newest ScannedAt (Unix nanoseconds), 0 when empty
	count    int           // distinct domains
	fromFile bool          // read from the cache file, not the store: version is the file's

	pins map[string]store.Pin // by A-label domain, expired ones too; read-only
}

func (sn *snapshot) len() int {
	if sn == nil {
		return 0
	}
	return sn.count
}

// get returns the record of an A-label domain name: the delta's, else the
// base's. The delta shares the base's hash seed: the name is hashed once.
func (sn *snapshot) get(domain string) (record, bool) {
	if sn == nil || sn.base == nil {
		return record{}, false
	}
	h := maphash.String(sn.base.seed, domain)
	if e := sn.delta.findHash(domain, h); e != nil {
		if e.verdict == tombstone {
			return record{}, false
		}
		return sn.delta.record(e), true
	}
	if e := sn.base.findHash(domain, h); e != nil && e.verdict != tombstone {
		return sn.base.record(e), true
	}
	return record{}, false
}

// mergeAt is the delta size past which it is patched into the base. An
// update copies the delta's arrays and indexes it anew (a few milliseconds
// for tens of thousands of domains); a patch copies the base's arrays
// (tens of milliseconds at a million domains) and, when the garbage
// patches leave grows large, a rebuild copies every entry one by one
// (about half a second at a million domains; see table.compact). For a
// rescan of every domain applied 256 results at a time, a thirtieth of
// the base keeps updates, patches and rebuilds rare and short.
func (s *Server) mergeAt(base int) int { return max(s.mergeMin, base/32) }

// defaultMergeMin is the smallest delta that is merged.
const defaultMergeMin = 4096

// loadFull reads every stored result into a new snapshot. skipped counts
// the results that could not be represented (invalid domain, verdict or
// JSON).
func (s *Server) loadFull(ctx context.Context) (_ *snapshot, skipped int, _ error) {
	start := time.Now()
	b := newBuilder(s.snap.Load().len() + 1024)
	v, err := readItems(ctx, s.store(), 0, runtime.GOMAXPROCS(0), func(ib *itemBatch) {
		skipped += ib.skipped
		for i := range ib.items {
			if it := &ib.items[i]; it.verdict == tombstone {
				skipped++
			} else {
				b.addItem(it, ib.arena)
			}
		}
	})
	if err != nil {
		return nil, 0, err
	}
	t := b.finish()
	return &snapshot{base: t, version: v, loadTook: time.Since(start), newest: t.newest, count: t.count},
		skipped + t.skipped, nil
}

// loadChanges applies the results changed since cur was read. It returns
// nil (and no error) when the store's data version went back: the database
// is not the one cur was read from, and only a full load is right.
//
// It works on one goroutine: the lookups keep the other processors while a
// scan writes.
func (s *Server) loadChanges(ctx context.Context, cur *snapshot) (_ *snapshot, skipped int, _ error) {
	b := builderFrom(cur.delta, 256)
	base := cur.base
	v, err := readItems(ctx, s.store(), cur.version, 0, func(ib *itemBatch) {
		skipped += ib.skipped
		for i := range ib.items {
			it := &ib.items[i]
			if it.verdict == tombstone {
				skipped++
			}
			if b.addItem(it, ib.arena) {
				e := base.find(it.domain)
				b.entries[len(b.entries)-1].inBase = e != nil && e.verdict != tombstone
			}
		}
	})
	if err != nil {
		return nil, 0, err
	}
	if v < cur.version {
		return nil, 0, nil
	}
	delta := b.finishSeed(base.seed)
	skipped += delta.skipped
	next := &snapshot{base: base, delta: delta, version: v, loadTook: cur.loadTook,
		newest: max(cur.newest, delta.newest)}
	// A delta that also holds many superseded entries (domains changed
	// again and again) is folded in early too.
	if limit := s.mergeAt(base.len()); delta.count > limit || len(delta.entries) > 4*limit {
		next.base, next.delta = patch(base, delta), nil
		if next.base.compact() {
			next.base = merge(next.base, nil)
		}
		next.count = next.base.len()
		return next, skipped, nil
	}
	next.count = base.len()
	delta.each(func(e *entry) {
		switch {
		case e.verdict == tombstone && e.inBase:
			next.count--
		case e.verdict != tombstone && !e.inBase:
			next.count++
		}
	})
	if delta.count == 0 {
		next.delta = nil
	}
	return next, skipped, nil
}

// merge builds one table of base with delta (nil: none) applied, copying
// every entry: the rebuild that drops a patched table's garbage.
func merge(base, delta *table) *table {
	b := newBuilder(base.len() + delta.len())
	base.each(func(e *entry) {
		if e.verdict != tombstone && delta.find(base.name(e)) == nil {
			b.copyEntry(base, e)
		}
	})
	delta.each(func(e *entry) {
		if e.verdict != tombstone {
			b.copyEntry(delta, e)
		}
	})
	return b.finish()
}

// item is one stored answer, ready for a builder. Its flag key (see
// appendFlagKey), MX list and STS match list are byte ranges of its batch's
// arena. A result whose verdict is not one of the ten (a stored result that
// did not decode) is a tombstone: it removes the domain from the cache.
type item struct {
	domain             string
	scanned            int64
	verdict            uint8 // index into result.Verdicts, or tombstone
	prev               uint8 // record.Prev
	flagsOff, flagsEnd uint32
	mxOff, mxEnd       uint32
	stsOff, stsEnd     uint32
}

// Batches of the load pipeline: about loadBatchRows rows (fewer when their
// strings exceed loadBatchBytes), a few per goroutine in flight.
const (
	loadBatchRows  = 1024
	loadBatchBytes = 1 << 20
)

// answerBatch is a batch of stored answers.
type answerBatch struct {
	rows  []store.Answer
	bytes int
}

// itemBatch is a batch of items.
type itemBatch struct {
	items   []item
	arena   []byte
	skipped int // rows whose domain is not a valid A-label host name
}

// readItems reads the stored answers changed since data version since (all
// of them when 0) and turns them into items on workers goroutines while the
// store reads on. It calls add, on the calling goroutine, with each batch
// (valid only during the call; batches come in no particular order), and
// returns the data version the answers are consistent with
// (store.AnswersSince). Memory in flight is bounded by a few batches per
// goroutine.
func readItems(ctx context.Context, st *store.Store, since int64, workers int, add func(*itemBatch)) (int64, error) {
	if workers <= 0 {
		return readItemsInline(ctx, st, since, add)
	}
	inFlight := 2*workers + 2
	rowsFree := make(chan *answerBatch, inFlight)
	itemFree := make(chan *itemBatch, inFlight)
	for range inFlight {
		rowsFree <- &answerBatch{}
		itemFree <- &itemBatch{}
	}
	work := make(chan *answerBatch, inFlight)
	out := make(chan *itemBatch, inFlight)

	var (
		version int64
		readErr error
	)
	go func() {
		defer close(work)
		cur := <-rowsFree
		version, readErr = st.AnswersSince(ctx, since, func(a *store.Answer) error {
			cur.rows = append(cur.rows, *a)
			cur.bytes += len(a.Domain) + len(a.MX) + len(a.STSMX)
			if len(cur.rows) >= loadBatchRows || cur.bytes >= loadBatchBytes {
				work <- cur
				cur = <-rowsFree
			}
			return nil
		})
		if len(cur.rows) > 0 {
			work <- cur
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ab := range work {
				ib := <-itemFree
				ib.items, ib.arena, ib.skipped = ib.items[:0], ib.arena[:0], 0
				for i := range ab.rows {
					ib.add(&ab.rows[i])
				}
				clear(ab.rows) // drop the strings
				ab.rows, ab.bytes = ab.rows[:0], 0
				rowsFree <- ab
				out <- ib
			}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	for ib := range out {
		add(ib)
		clear(ib.items)
		itemFree <- ib
	}
	return version, readErr
}

// readItemsInline is readItems on the calling goroutine alone: each row
// becomes an item as the store reads it.
func readItemsInline(ctx context.Context, st *store.Store, since int64, add func(*itemBatch)) (int64, error) {
	var ib itemBatch
	flush := func() {
		if len(ib.items) > 0 || ib.skipped > 0 {
			add(&ib)
		}
		clear(ib.items)
		ib.items, ib.arena, ib.skipped = ib.items[:0], ib.arena[:0], 0
	}
	version, err := st.AnswersSince(ctx, since, func(a *store.Answer) error {
		ib.add(a)
		if len(ib.items) >= loadBatchRows || len(ib.arena) >= loadBatchBytes {
			flush()
		}
		return nil
	})
	flush()
	return version, err
}

// add adds the item of one stored answer to the batch: what recordOf takes
// from a full result.
func (ib *itemBatch) add(a *store.Answer) {
	if d, err := NormalizeDomain(a.Domain); err != nil || d != a.Domain {
		ib.skipped++
		return
	}
	it := item{domain: a.Domain, verdict: tombstone}
	v := a.Verdict.Rank()
	if v >= len(result.Verdicts) {
		ib.items = append(ib.items, it)
		return
	}
	it.verdict = uint8(v)
	it.scanned = a.ScannedAt
	b := ib.arena
	it.flagsOff = uint32(len(b))
	b = appendFlagKey(b, a.Flags)
	it.flagsEnd = uint32(len(b))
	it.mxOff = it.flagsEnd
	n := 0 // as joinBounded counts
	for rest := a.MX; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, ",")
		if n+1+len(name) > math.MaxUint16 {
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		n += 1 + len(name)
		b = append(b, name...)
	}
	it.mxEnd = uint32(len(b))
	it.stsOff = it.mxEnd
	var sts string
	it.prev, sts = prevOf(a, stsMatchOf(a.STSMode, stsPatterns(a.STSMX)))
	b = append(b, sts...)
	it.stsEnd = uint32(len(b))
	ib.arena = b
	ib.items = append(ib.items, it)
}

// stsPatterns is the list of MTA-STS mx patterns of a store.Answer.
func stsPatterns(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// recordOfAnswer is the record of a stored answer: recordOf of its result.
func recordOfAnswer(a *store.Answer) record {
	var mx []string
	if a.MX != "" {
		mx = strings.Split(a.MX, ",")
	}
	prev, sts := prevOf(a, stsMatchOf(a.STSMode, stsPatterns(a.STSMX)))
	return record{
		Domain:    a.Domain,
		Verdict:   a.Verdict,
		Flags:     a.Flags,
		ScannedAt: a.ScannedTime(),
		MX:        joinBounded(mx, ","),
		STSMatch:  sts,
		Prev:      prev,
	}
}
