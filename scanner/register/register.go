// Package register reads the register of recipient addresses, the input of
// `tlsready scan`, as a stream: one entry per line, in constant memory
// whatever the file's size.
//
// # Formats
//
// The format is detected from the first line that is neither blank, nor a
// comment, nor bad for its length or encoding. If that line parses as a CSV header (encoding/csv; comma, semicolon
// or tab separated, tried in that order) with a column named "email"
// (case-insensitive, surrounding spaces ignored), the file is CSV: the "email"
// column holds the address and an optional "id" column the entry's ID; other
// columns are ignored. Otherwise the file has one address per line, and that
// first line is data too.
//
// In both formats a UTF-8 byte order mark at the start of the file, CRLF line
// ends and blank lines (skipped, not bad) are accepted, as are lines starting
// with '#' before the CSV header is found (comments). In the one-address
// format every line starting with '#' is a comment. A CSV record must fit on
// one physical line: quoted fields spanning lines are not supported, and a
// quote left open at the end of a line makes the line bad ("csv-malformed").
//
// # Bad lines
//
// Lines that do not yield an entry are skipped and counted in Stats by one
// of these stable reasons (the Reason constants):
//
//	no-at                no '@' in the address
//	empty-local          nothing before the last '@'
//	empty-domain         nothing (or only a dot) after the last '@'
//	local-too-long       local part over 64 octets (RFC 5321 §4.5.3.1.1)
//	invalid-domain       the domain fails IDNA Lookup validation or DNS lengths
//	address-literal      an address literal ("user@[192.0.2.1]") or a bare IP
//	invalid-utf8         the line is not valid UTF-8
//	too-long             the line exceeds Options.MaxLineBytes
//	csv-malformed        encoding/csv rejects the record (bare or unclosed quote)
//	missing-email-field  a CSV record without (or with an empty) email column
//
// # Duplicates
//
// With Options.Duplicates, entries that repeat an earlier entry are counted
// and listed by line number (Stats.DuplicateIDs, Stats.DuplicateAddresses),
// and still returned: an entry whose ID (the CSV id column) repeats an earlier
// entry's replaces it in the store, so the register has one recipient fewer
// than entries; an entry with a new ID whose address repeats an earlier
// entry's stays a recipient of its own. Addresses are compared with the local
// part as written and the domain normalised. Duplicates are counted when the
// end of the input is reached, by a 64-bit hash keyed per Reader: over 10
// million entries the chance that two different IDs are taken for one is
// about 3 in a million. Registers over 4294967295 lines are not checked.
//
// Nothing this package returns, counts or reports contains line content:
// only line numbers.
//
// It owns the register's formats and their bad lines; domains are
// normalised by scanner/dnsname. It must not know where entries go (the
// store, through cmd/internal/job) or what is done with their domains.
package register

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bad-line reasons: stable kebab-case words, see the package documentation.
const (
	ReasonNoAt              = "no-at"
	ReasonEmptyLocal        = "empty-local"
	ReasonEmptyDomain       = "empty-domain"
	ReasonLocalTooLong      = "local-too-long"
	ReasonInvalidDomain     = "invalid-domain"
	ReasonAddressLiteral    = "address-literal"
	ReasonInvalidUTF8       = "invalid-utf8"
	ReasonTooLong           = "too-long"
	ReasonCSVMalformed      = "csv-malformed"
	ReasonMissingEmailField = "missing-email-field"
)

// Reasons lists every bad-line reason.
var Reasons = []string{
	ReasonNoAt, ReasonEmptyLocal, ReasonEmptyDomain, ReasonLocalTooLong,
	ReasonInvalidDomain, ReasonAddressLiteral, ReasonInvalidUTF8, ReasonTooLong,
	ReasonCSVMalformed, ReasonMissingEmailField,
}

// Options configure a Reader. The zero value is ready to use.
type Options struct {
	// KeepAddresses keeps the normalised address in Entry.Address. By
	// default the local part is never retained.
	KeepAddresses bool
	// MaxLineBytes bounds a line, without its line end; <= 0 means 4096.
	// Longer lines are bad ("too-long") and skipped without being buffered
	// whole.
	MaxLineBytes int
	// MaxBadLineNumbers is how many line numbers Stats.BadLines keeps per
	// reason, and Stats.DuplicateIDLines and DuplicateAddressLines each; 0
	// means 100, < 0 keeps none.
	MaxBadLineNumbers int
	// Duplicates counts entries that repeat an earlier entry's ID or
	// address (see the package documentation) when the end of the input is
	// reached, at 12 bytes of memory per entry until then (24 with an id
	// column).
	Duplicates bool
}

const (
	defaultMaxLineBytes      = 4096
	defaultMaxBadLineNumbers = 100
	readBufferSize           = 64 << 10
)

// Entry is one good line of the register.
type Entry struct {
	Line    int64  // 1-based physical line number
	ID      string // the CSV id column when present and not empty, else Line in decimal
	Domain  string // A-label (punycode) form, lower case, no trailing dot: used for DNS
	Unicode string // U-label form for display; "" when the same as Domain
	Address string // local@Domain (local part unchanged) when KeepAddresses; else ""
}

// Stats count what a Reader has read so far. Lines == OK + Bad + Skipped.
type Stats struct {
	Lines    int64              // physical lines read, including blank, comment and header lines
	OK       int64              // lines returned as entries
	Bad      int64              // lines skipped as bad, by reason in ByReason
	Skipped  int64              // blank lines, comment lines and the CSV header
	ByReason map[string]int64   // reason -> count
	BadLines map[string][]int64 // reason -> the first MaxBadLineNumbers line numbers, ascending
	CSV      bool               // the input was detected as CSV

	// With Options.Duplicates, once Next has returned io.EOF: entries
	// (counted in OK) that repeat an earlier entry's ID, and entries with a
	// new ID that repeat an earlier entry's address; the first
	// MaxBadLineNumbers of each, ascending. OK - DuplicateIDs is the number
	// of distinct recipients.
	DuplicateIDs          int64
	DuplicateAddresses    int64
	DuplicateIDLines      []Duplicate
	DuplicateAddressLines []Duplicate
}

// ErrRead wraps an error of the underlying stream returned by Reader.Next.
var ErrRead = errors.New("register: reading input")

type mode int

const (
	modeUnknown mode = iota // no data line seen yet
	modePlain
	modeCSV
)

// Reader reads entries from a register. It is not safe for concurrent use.
type Reader struct {
	opts    Options
	maxLine int
	maxBad  int
	br      *bufio.Reader
	long    []byte // accumulates a line longer than br's buffer
	err     error  // sticky: io.EOF or a wrapped read error

	mode     mode
	csv      *csv.Reader
	feed     lineFeed
	comma    []byte // the CSV separator
	emailCol int
	idCol    int  // -1: no id column
	slowCSV  bool // tests: parse every CSV line with encoding/csv

	cache    *domainCache
	dups     *dupFinder // nil unless Options.Duplicates
	addrHash uint64     // with dups: the hash of the address entryOf last parsed
	st       Stats
}

// NewReader returns a Reader over r. It buffers r itself.
func NewReader(r io.Reader, opts Options) *Reader {
	rd := &Reader{
		opts:    opts,
		maxLine: opts.MaxLineBytes,
		maxBad:  opts.MaxBadLineNumbers,
		br:      bufio.NewReaderSize(r, readBufferSize),
		cache:   newDomainCache(),
		idCol:   -1,
	}
	if rd.maxLine <= 0 {
		rd.maxLine = defaultMaxLineBytes
	}
	rd.maxBad = cmp.Or(rd.maxBad, defaultMaxBadLineNumbers)
	if opts.Duplicates {
		rd.dups = newDupFinder()
	}
	rd.st.ByReason = make(map[string]int64)
	rd.st.BadLines = make(map[string][]int64)
	return rd
}

// Stats returns a copy of the counts so far.
func (r *Reader) Stats() Stats {
	st := r.st
	st.ByReason = maps.Clone(r.st.ByReason)
	st.BadLines = make(map[string][]int64, len(r.st.BadLines))
	for k, v := range r.st.BadLines {
		st.BadLines[k] = slices.Clone(v)
	}
	st.DuplicateIDLines = slices.Clone(r.st.DuplicateIDLines)
	st.DuplicateAddressLines = slices.Clone(r.st.DuplicateAddressLines)
	return st
}

// Next returns the next good entry. It returns io.EOF at the end of the
// input. Bad lines are skipped and counted, never returned as errors. An error
// of the underlying stream (a truncated gzip file, say) is returned wrapped in
// ErrRead, and again on every later call.
func (r *Reader) Next() (Entry, error) {
	for r.err == nil {
		line, tooLong, err := r.readLine()
		if err != nil {
			if err == io.EOF {
				r.err = io.EOF
				r.finishDups()
			} else {
				r.err = fmt.Errorf("%w: line %d: %w", ErrRead, r.st.Lines+1, err)
			}
			break
		}
		r.st.Lines++
		if tooLong {
			r.bad(ReasonTooLong)
			continue
		}
		if r.st.Lines == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		line = trimSpace(line)
		if len(line) == 0 {
			r.st.Skipped++
			continue
		}
		if !utf8.Valid(line) {
			r.bad(ReasonInvalidUTF8)
			continue
		}
		if r.mode == modeUnknown {
			if r.detectHeader(line) {
				r.st.Skipped++
				continue
			}
			if line[0] == '#' {
				r.st.Skipped++ // a comment before the header or the first address
				continue
			}
			r.mode = modePlain
		}
		var (
			e      Entry
			reason string
		)
		if r.mode == modeCSV {
			e, reason = r.csvEntry(line)
		} else {
			if line[0] == '#' {
				r.st.Skipped++
				continue
			}
			e, reason = entryOf(r, line)
			if reason == "" {
				e.ID = strconv.FormatInt(r.st.Lines, 10)
			}
		}
		if reason != "" {
			r.bad(reason)
			continue
		}
		e.Line = r.st.Lines
		r.st.OK++
		if r.dups != nil {
			r.recordDup(e, r.addrHash, r.mode == modeCSV && r.idCol >= 0)
		}
		return e, nil
	}
	return Entry{}, r.err
}

// entryOf parses one address (bytes of a plain line, or a CSV field).
func entryOf[T string | []byte](r *Reader, addr T) (Entry, string) {
	local, dom, reason := splitAddress(addr)
	if reason != "" {
		return Entry{}, reason
	}
	d := cachedDomain(r.cache, dom)
	if d.reason != "" {
		return Entry{}, d.reason
	}
	e := Entry{Domain: d.ascii, Unicode: d.unicode}
	if r.dups != nil {
		r.addrHash = hashAddress(r.dups, local, d.ascii)
	}
	if r.opts.KeepAddresses {
		e.Address = string(local) + "@" + d.ascii
	}
	return e, ""
}

// csvEntry parses one CSV record on one line. A line without quotes is
// split at the separator directly, which is what encoding/csv does with such
// a line (FuzzReader checks), without its copies; other lines go through
// encoding/csv.
func (r *Reader) csvEntry(line []byte) (Entry, string) {
	if !r.slowCSV && bytes.IndexByte(line, '"') < 0 {
		var email, id []byte
		hasEmail := false
		for i := 0; ; i++ {
			field, rest, more := bytes.Cut(line, r.comma)
			if i == r.emailCol {
				email, hasEmail = bytes.TrimSpace(field), true
			}
			if i == r.idCol {
				id = bytes.TrimSpace(field)
			}
			if !more {
				break
			}
			line = rest
		}
		return csvFields(r, email, id, hasEmail)
	}
	r.feed.set(line)
	rec, err := r.csv.Read()
	r.feed.set(nil)
	if err != nil {
		// A *csv.ParseError, or io.EOF with a record: encoding/csv accepts
		// a quote left open at the end of its input, and the end of the
		// line is the end of its input here.
		return Entry{}, ReasonCSVMalformed
	}
	var email, id string
	if r.emailCol < len(rec) {
		email = strings.TrimSpace(rec[r.emailCol])
	}
	if r.idCol >= 0 && r.idCol < len(rec) {
		id = strings.Clone(strings.TrimSpace(rec[r.idCol])) // unpinned from the record
	}
	return csvFields(r, email, id, r.emailCol < len(rec))
}

// csvFields makes the entry of a record's trimmed email and id fields.
func csvFields[T string | []byte](r *Reader, email, id T, hasEmail bool) (Entry, string) {
	if !hasEmail || len(email) == 0 {
		return Entry{}, ReasonMissingEmailField
	}
	e, reason := entryOf(r, email)
	if reason != "" {
		return Entry{}, reason
	}
	if len(id) > 0 {
		e.ID = string(id)
	} else {
		e.ID = strconv.FormatInt(r.st.Lines, 10)
	}
	return e, ""
}

// detectHeader reports whether line is a CSV header with an email column,
// and if so switches to CSV mode.
func (r *Reader) detectHeader(line []byte) bool {
	for _, comma := range []rune{',', ';', '\t'} {
		if comma != ',' && bytes.IndexRune(line, comma) < 0 {
			continue
		}
		cr := csv.NewReader(bytes.NewReader(line))
		cr.Comma = comma
		cr.FieldsPerRecord = -1
		cr.TrimLeadingSpace = true
		rec, err := cr.Read()
		if err != nil {
			continue
		}
		email, id := -1, -1
		for i, f := range rec {
			f = strings.TrimSpace(f)
			if email < 0 && strings.EqualFold(f, "email") {
				email = i
			}
			if id < 0 && strings.EqualFold(f, "id") {
				id = i
			}
		}
		if email < 0 {
			continue
		}
		r.mode, r.emailCol, r.idCol = modeCSV, email, id
		r.comma = []byte(string(comma))
		r.csv = csv.NewReader(&r.feed)
		r.csv.Comma = comma
		r.csv.FieldsPerRecord = -1
		r.csv.ReuseRecord = true
		r.csv.TrimLeadingSpace = true // `1, "a@example.org"` is not malformed
		r.st.CSV = true
		return true
	}
	return false
}

// bad counts the current line as bad.
func (r *Reader) bad(reason string) {
	r.st.Bad++
	r.st.ByReason[reason]++
	if l := r.st.BadLines[reason]; len(l) < r.maxBad {
		r.st.BadLines[reason] = append(l, r.st.Lines)
	}
}

// readLine returns the next line without its line end ("\n" or "\r\n"). A
// line longer than maxLine is reported as tooLong and its bytes are
// discarded as they are read: memory stays bounded by the buffer and maxLine.
// The last line may lack a line end. At the end of input it returns io.EOF.
// The returned slice is valid until the next call.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	buf, err := r.br.ReadSlice('\n')
	switch {
	case err == nil || (err == io.EOF && len(buf) > 0):
		line = trimEOL(buf)
		return line, len(line) > r.maxLine, nil
	case err != bufio.ErrBufferFull:
		return nil, false, err // io.EOF at the end, or a read error
	}
	// A line longer than the buffer: keep it only while it can still fit.
	limit := r.maxLine + 2 // room for "\r\n"
	r.long = r.long[:0]
	for {
		if !tooLong {
			if len(r.long)+len(buf) > limit {
				tooLong = true
				r.long = r.long[:0]
			} else {
				r.long = append(r.long, buf...)
			}
		}
		if err == nil || err == io.EOF {
			break
		}
		if err != bufio.ErrBufferFull {
			return nil, false, err
		}
		buf, err = r.br.ReadSlice('\n')
	}
	if tooLong {
		return nil, true, nil
	}
	line = trimEOL(r.long)
	return line, len(line) > r.maxLine, nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// trimSpace trims ASCII white space (UTF-8 is checked later).
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// lineFeed is the io.Reader under the CSV reader: it yields one line at a
// time, then io.EOF until the next line is set.
type lineFeed struct {
	b  []byte
	nl bool // the "\n" after b is still to be read
}

func (f *lineFeed) set(b []byte) { f.b, f.nl = b, b != nil }

func (f *lineFeed) Read(p []byte) (int, error) {
	if len(f.b) == 0 && !f.nl {
		return 0, io.EOF
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	if len(f.b) == 0 && f.nl && n < len(p) {
		p[n] = '\n'
		n++
		f.nl = false
	}
	return n, nil
}
