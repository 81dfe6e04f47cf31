package gateway

import (
	"bytes"
	"errors"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tlsready/tlsready/scanner/result"
)

// storedResult is the part of a stored result.Result (its JSON) that the
// gateway answers from, with the same JSON names; the rest (probes,
// certificates, TLSA records) is skipped. TestStoredResultMirrorsResult keeps
// the names and types in step with result.Result. The domain comes from the
// store's key column.
type storedResult struct {
	Verdict   result.Verdict `json:"verdict"`
	Flags     []string       `json:"flags"`
	ScannedAt time.Time      `json:"scanned_at"`
	MX        []storedHost   `json:"mx"`
	MTASTS    *storedSTS     `json:"mta_sts"`
}

type storedHost struct {
	Name string `json:"name"`
}

type storedSTS struct {
	Mode string   `json:"mode"`
	MX   []string `json:"mx"`
}

// decodeStored decodes the JSON of a stored result.Result into r exactly as
// json.Unmarshal(data, r) would: the same values (unknown fields skipped,
// keys matched exactly and then case-insensitively, null leaving values
// alone or clearing pointers and slices, repeated keys decoding into what is
// there) and an error in the same cases (invalid JSON anywhere, a value of
// the wrong type for a field). FuzzDecodeStored checks it against
// encoding/json.
//
// It exists for speed: one pass without reflection that skips most of a
// result, where encoding/json validates the whole input and then walks it
// again through reflection; decoding is most of a cache load's time.
//
// Strings that repeat across results (verdicts, flags, MX host names) are
// taken from in when it is not nil, and added to it while it is small.
func decodeStored(data []byte, r *storedResult, in interner) error {
	d := decoder{b: data, in: in}
	d.ws()
	var err error
	switch d.peek() {
	case '{':
		err = d.object(func(f int) error { return d.resultField(f, r) }, resultFields)
	case 'n':
		err = d.literal("null")
	default:
		if err = d.skip(); err == nil {
			err = errType
		}
	}
	if err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.b) {
		return errSyntax
	}
	return nil
}

var (
	errSyntax = errors.New("gateway: stored result: invalid JSON")
	errType   = errors.New("gateway: stored result: JSON value of the wrong type")
	errDepth  = errors.New("gateway: stored result: JSON nested too deeply")
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// decoder reads one JSON document.
type decoder struct {
	b     []byte
	i     int
	depth int
	in    interner
}

// interner shares the strings of repeated values between results; it is
// used by one goroutine at a time.
type interner map[string]string

// maxInterned bounds an interner.
const maxInterned = 4096

func (in interner) string(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in) < maxInterned {
		in[s] = s
	}
	return s
}

// fieldSet names the JSON fields of one struct.
type fieldSet []string

// find returns the index of the field named key (-1: none): an exact match
// first, then a case-insensitive one as encoding/json does (Unicode simple
// folding: "ſ" matches "s", "K" (Kelvin) matches "k").
func (f fieldSet) find(key []byte) int {
	for i, n := range f {
		if string(key) == n {
			return i
		}
	}
	for i, n := range f {
		if bytes.EqualFold(key, []byte(n)) {
			return i
		}
	}
	return -1
}

var (
	resultFields = fieldSet{"verdict", "flags", "scanned_at", "mx", "mta_sts"}
	hostFields   = fieldSet{"name"}
	stsFields    = fieldSet{"mode", "mx"}
)

func (d *decoder) resultField(f int, r *storedResult) error {
	switch f {
	case 0:
		return decodeString(d, &r.Verdict, true)
	case 1:
		return d.strings(&r.Flags)
	case 2:
		return d.time(&r.ScannedAt)
	case 3:
		return decodeSlice(d, &r.MX, func(h *storedHost) error {
			return decodeStruct(d, h, hostFields, func(int, *storedHost) error { return decodeString(d, &h.Name, true) })
		})
	case 4:
		return decodePtr(d, &r.MTASTS, func(s *storedSTS) error {
			return decodeStruct(d, s, stsFields, func(f int, s *storedSTS) error {
				if f == 0 {
					return decodeString(d, &s.Mode, true)
				}
				return d.strings(&s.MX)
			})
		})
	}
	return d.skip()
}

// decodeStruct decodes an object into v (null: v unchanged); field decodes
// the value of field f of fs (-1: unknown, to skip).
func decodeStruct[T any](d *decoder, v *T, fs fieldSet, field func(int, *T) error) error {
	switch d.peek() {
	case '{':
		return d.object(func(f int) error {
			if f < 0 {
				return d.skip()
			}
			return field(f, v)
		}, fs)
	case 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

// decodePtr decodes into *p, allocating it when nil; null sets it to nil.
func decodePtr[T any](d *decoder, p **T, elem func(*T) error) error {
	if d.peek() == 'n' {
		*p = nil
		return d.literal("null")
	}
	if *p == nil {
		*p = new(T)
	}
	return elem(*p)
}

// decodeSlice decodes an array into *s as encoding/json does: into the
// existing elements first (a repeated key merges), growing within the
// capacity, truncating to the array's length; an empty array gives an
// empty non-nil slice, null a nil one.
func decodeSlice[T any](d *decoder, s *[]T, elem func(*T) error) error {
	switch d.peek() {
	case 'n':
		*s = nil
		return d.literal("null")
	case '[':
	default:
		return d.wrongType()
	}
	i := 0
	err := d.array(func() error {
		if i >= len(*s) {
			if i < cap(*s) {
				*s = (*s)[:i+1]
			} else {
				var zero T
				*s = append(*s, zero)
			}
		}
		i++
		return elem(&(*s)[i-1])
	})
	if err != nil {
		return err
	}
	if i < len(*s) {
		*s = (*s)[:i]
	}
	if i == 0 {
		*s = []T{}
	}
	return nil
}

// decodeString decodes a string into a string type (shared through the
// interner when intern is set); null leaves it.
func decodeString[S ~string](d *decoder, s *S, intern bool) error {
	switch d.peek() {
	case '"':
		b, err := d.stringBytes(true)
		if err != nil {
			return err
		}
		if intern {
			*s = S(d.in.string(b))
		} else {
			*s = S(b)
		}
		return nil
	case 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

func (d *decoder) strings(s *[]string) error {
	return decodeSlice(d, s, func(e *string) error { return decodeString(d, e, true) })
}

// time hands the value, whatever it is, to time.Time.UnmarshalJSON, as
// encoding/json does for a json.Unmarshaler.
func (d *decoder) time(t *time.Time) error {
	start := d.i
	if err := d.skip(); err != nil {
		return err
	}
	return t.UnmarshalJSON(d.b[start:d.i])
}

// wrongType skips a value and reports a type error (or the syntax error
// found while skipping).
func (d *decoder) wrongType() error {
	if err := d.skip(); err != nil {
		return err
	}
	return errType
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space (0 at the end).
func (d *decoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) literal(lit string) error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return errSyntax
	}
	d.i += len(lit)
	return nil
}

func (d *decoder) push() error {
	d.depth++
	if d.depth > maxDepth {
		return errDepth
	}
	return nil
}

// object reads an object (at '{'), calling field with the index in fs of
// each key (-1: unknown) to read the value.
func (d *decoder) object(field func(int) error, fs fieldSet) error {
	if err := d.push(); err != nil {
		return err
	}
	d.i++ // {
	if d.peek() == '}' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if d.peek() != '"' {
			return errSyntax
		}
		key, err := d.stringBytes(fs != nil)
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return errSyntax
		}
		d.i++
		d.ws()
		f := -1
		if fs != nil {
			f = fs.find(key)
		}
		if err := field(f); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// array reads an array (at '['), calling elem to read each element.
func (d *decoder) array(elem func() error) error {
	if err := d.push(); err != nil {
		return err
	}
	d.i++ // [
	if d.peek() == ']' {
		d.i++
		d.depth--
		return nil
	}
	for {
		d.ws()
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// skip reads and checks any value.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '{':
		return d.object(func(int) error { return d.skip() }, nil)
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		_, err := d.stringBytes(false)
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	}
	return errSyntax
}

// number reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() error {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case digits() == 0:
		return errSyntax
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return errSyntax
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return errSyntax
		}
	}
	return nil
}

// stringBytes reads a string (at '"') and, when want is set, returns its
// decoded bytes: a slice of the input when there is nothing to decode.
func (d *decoder) stringBytes(want bool) ([]byte, error) {
	d.i++ // "
	start := d.i
	plain := true
	for {
		if d.i >= len(d.b) {
			return nil, errSyntax
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !want {
				return nil, nil
			}
			if plain || utf8.Valid(s) && !hasByte(s, '\\') {
				return s, nil
			}
			return unquote(s), nil
		case c == '\\':
			plain = false
			d.i++
			if d.i >= len(d.b) {
				return nil, errSyntax
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				if len(d.b)-d.i < 5 || hex4(d.b[d.i+1:d.i+5]) < 0 {
					return nil, errSyntax
				}
				d.i += 5
			default:
				return nil, errSyntax
			}
		case c < 0x20:
			return nil, errSyntax
		case c >= utf8.RuneSelf:
			plain = false
			d.i++
		default:
			d.i++
		}
	}
}

func hasByte(s []byte, c byte) bool {
	for _, x := range s {
		if x == c {
			return true
		}
	}
	return false
}

// hex4 decodes four hex digits (-1: not hex).
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// unquote decodes the contents of a checked string as encoding/json does:
// escapes decoded, an unpaired surrogate and each byte of invalid UTF-8
// replaced by U+FFFD.
func unquote(s []byte) []byte {
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := hex4(s[r+1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != unicode.ReplacementChar {
							b = utf8.AppendRune(b, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // " \ /
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return b
}
