// Package storedjson is a reflection-free decoder for the result JSON the
// store keeps (a scanner/result.Result), for the report's exports, which
// read a million results (the gateway reads the store's read model
// instead, store.Answer). The report maps the fields it reads onto its
// own light structs with
// DecodeStruct, DecodeSlice, DecodePtr and the Decoder's value methods, and
// gets the values and errors json.Unmarshal would give (unknown fields
// skipped, keys matched exactly and then case-insensitively, null leaving
// values alone or clearing pointers and slices, repeated keys decoding into
// what is there, invalid JSON anywhere an error). The report's fuzz test
// (FuzzDecodeStored) checks it against encoding/json.
package storedjson

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

var (
	ErrSyntax = errors.New("storedjson: invalid JSON")
	ErrType   = errors.New("storedjson: JSON value of the wrong type")
	ErrDepth  = errors.New("storedjson: JSON nested too deeply")
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// Decoder reads one JSON document.
type Decoder struct {
	b     []byte
	i     int
	depth int
	in    Interner
}

// NewDecoder returns a decoder of data, one JSON document, that takes
// repeated strings from in when it is not nil (see Interner). Decode the
// document with DecodeStruct (or another Decode function) and then call End.
func NewDecoder(data []byte, in Interner) *Decoder {
	return &Decoder{b: data, in: in}
}

// End reports a syntax error unless only white space follows the value read.
func (d *Decoder) End() error {
	d.ws()
	if d.i != len(d.b) {
		return ErrSyntax
	}
	return nil
}

// Interner shares the strings of repeated values (verdicts, flags, host
// names) between results; it is used by one goroutine at a time.
type Interner map[string]string

// maxInterned bounds an interner.
const maxInterned = 4096

// String returns b as a string, the same one as before for bytes seen
// before; new strings are kept while the interner is small. A nil Interner
// just converts.
func (in Interner) String(b []byte) string {
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

// FieldSet names the JSON fields of one struct, in the struct's order, and
// keeps their folded forms for the case-insensitive match (encoding/json's
// foldName).
type FieldSet struct {
	names, folded []string
	lens          uint64 // bit n: a name or folded name is n bytes long (bit 63: 63 or more)
}

// NewFieldSet returns the field set of names; a field's index in names is
// the f a DecodeStruct field function gets.
func NewFieldSet(names ...string) *FieldSet {
	f := &FieldSet{names: names}
	for _, n := range names {
		fn := string(foldName([]byte(n)))
		f.folded = append(f.folded, fn)
		f.lens |= 1<<min(len(n), 63) | 1<<min(len(fn), 63)
	}
	return f
}

// find returns the index of the field named key (-1: none): an exact match
// first, then the first whose folded name equals key's, as encoding/json
// does (Unicode simple folding: "ſ" matches "s", "K" (Kelvin) "k").
func (f *FieldSet) find(key []byte) int {
	if len(f.names) == 0 {
		return -1
	}
	ascii := true
	for _, c := range key {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	// An ASCII key matches (exactly or folded) only names of its length.
	if ascii && f.lens&(1<<min(len(key), 63)) == 0 {
		return -1
	}
	for i, n := range f.names {
		if string(key) == n {
			return i
		}
	}
	if ascii { // an ASCII key folds by upper-casing a-z: compare without folding it
		for i, n := range f.folded {
			if asciiEqualFold(key, n) {
				return i
			}
		}
		return -1
	}
	k := foldName(key)
	for i, n := range f.folded {
		if string(k) == n {
			return i
		}
	}
	return -1
}

// Match returns the index of the field named key, as find (-1: none), and
// whether key is that field's name exactly.
func (f *FieldSet) Match(key []byte) (i int, exact bool) {
	i = f.find(key)
	return i, i >= 0 && string(key) == f.names[i]
}

// asciiEqualFold reports whether the ASCII string a equals b with a-z and
// A-Z matched alike (b may hold other bytes, which then match nothing).
func asciiEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// foldName is encoding/json's: ASCII letters upper-cased, other runes
// replaced by the smallest rune of their case-folding set.
func foldName(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return out
}

// DecodeStruct decodes an object into v (null: v unchanged); field decodes
// the value of field f of fs (unknown fields are skipped). field should
// reach d through a closure rather than a parameter: d then stays off the
// heap.
func DecodeStruct[T any](d *Decoder, v *T, fs *FieldSet, field func(f int, v *T) error) error {
	switch d.peek() {
	case '{':
		return d.object(func(f int) error {
			if f < 0 {
				return d.Skip()
			}
			return field(f, v)
		}, fs)
	case 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

// DecodePtr decodes into *p, allocating it when nil; null sets it to nil.
func DecodePtr[T any](d *Decoder, p **T, elem func(*T) error) error {
	if d.peek() == 'n' {
		*p = nil
		return d.literal("null")
	}
	if *p == nil {
		*p = new(T)
	}
	return elem(*p)
}

// DecodeSlice decodes an array into *s as encoding/json does: into the
// existing elements first (a repeated key merges), growing within the
// capacity, truncating to the array's length; an empty array gives an
// empty non-nil slice, null a nil one.
func DecodeSlice[T any](d *Decoder, s *[]T, elem func(*T) error) error {
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
			switch {
			case i < cap(*s):
				*s = (*s)[:i+1]
			case cap(*s) == 0: // room for a few: most arrays are short
				*s = make([]T, 1, 4)
			default:
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

// DecodeString decodes a string into a string type (shared through the
// interner when intern is set); null leaves it.
func DecodeString[S ~string](d *Decoder, s *S, intern bool) error {
	switch d.peek() {
	case '"':
		b, err := d.stringBytes(true)
		if err != nil {
			return err
		}
		if intern {
			*s = S(d.in.String(b))
		} else {
			*s = S(b)
		}
		return nil
	case 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

// String decodes a string, not interned; null leaves it.
func (d *Decoder) String(s *string) error { return DecodeString(d, s, false) }

// Bytes reads a string and returns its decoded bytes (a slice of the
// input when nothing needed decoding: valid while the input is) and true;
// null gives nil and false.
func (d *Decoder) Bytes() ([]byte, bool, error) {
	switch d.peek() {
	case '"':
		b, err := d.stringBytes(true)
		return b, err == nil, err
	case 'n':
		return nil, false, d.literal("null")
	}
	return nil, false, d.wrongType()
}

// Null reports whether the next value is null (Skip reads it).
func (d *Decoder) Null() bool { return d.peek() == 'n' }

// Object reads an object, calling field with each key (decoded; valid
// only during the call) to read its value, which field must do; null is
// read as an object without keys. It is DecodeStruct for callers that
// match keys themselves.
func (d *Decoder) Object(field func(key []byte) error) error {
	switch d.peek() {
	case '{':
	case 'n':
		return d.literal("null")
	default:
		return d.wrongType()
	}
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
			return ErrSyntax
		}
		key, err := d.stringBytes(true)
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return ErrSyntax
		}
		d.i++
		d.ws()
		if err := field(key); err != nil {
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
			return ErrSyntax
		}
	}
}

// Array reads an array, calling elem to read each element; null is read as
// an empty array.
func (d *Decoder) Array(elem func() error) error {
	switch d.peek() {
	case '[':
		return d.array(elem)
	case 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

// CheckString reads a string or null without keeping it: the error String
// would give, for a field the caller does not need.
func (d *Decoder) CheckString() error {
	switch d.peek() {
	case '"':
		_, err := d.stringBytes(false)
		return err
	case 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

// Strings decodes an array of strings, interned, as DecodeSlice does.
//
// (Not inlined: its closure then stays off the heap.)
//
//go:noinline
func (d *Decoder) Strings(s *[]string) error {
	return DecodeSlice(d, s, func(e *string) error { return DecodeString(d, e, true) })
}

// Bool decodes true or false; null leaves it.
func (d *Decoder) Bool(v *bool) error {
	switch d.peek() {
	case 't':
		*v = true
		return d.literal("true")
	case 'f':
		*v = false
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

// Uint16 decodes a number into a uint16 as encoding/json does: an
// integer in range, else a type error; null leaves it.
func (d *Decoder) Uint16(v *uint16) error {
	switch c := d.peek(); {
	case c == '-' || '0' <= c && c <= '9':
		start := d.i
		if err := d.number(); err != nil {
			return err
		}
		n, err := strconv.ParseUint(string(d.b[start:d.i]), 10, 16)
		if err != nil {
			return ErrType
		}
		*v = uint16(n)
		return nil
	case c == 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

// Time hands the value, whatever it is, to time.Time.UnmarshalJSON, as
// encoding/json does for a json.Unmarshaler.
func (d *Decoder) Time(t *time.Time) error {
	start := d.i
	if err := d.Skip(); err != nil {
		return err
	}
	return t.UnmarshalJSON(d.b[start:d.i])
}

// Text decodes a string with an encoding.TextUnmarshaler; null is ignored.
func (d *Decoder) Text(unmarshal func([]byte) error) error {
	switch d.peek() {
	case '"':
		b, err := d.stringBytes(true)
		if err != nil {
			return err
		}
		return unmarshal(b)
	case 'n':
		return d.literal("null")
	}
	return d.wrongType()
}

// wrongType skips a value and reports a type error (or the syntax error
// found while skipping).
func (d *Decoder) wrongType() error {
	if err := d.Skip(); err != nil {
		return err
	}
	return ErrType
}

func (d *Decoder) ws() {
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return
		}
		d.i++
	}
}

// peek returns the next byte after white space (0 at the end).
func (d *Decoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *Decoder) literal(lit string) error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return ErrSyntax
	}
	d.i += len(lit)
	return nil
}

func (d *Decoder) push() error {
	d.depth++
	if d.depth > maxDepth {
		return ErrDepth
	}
	return nil
}

// object reads an object (at '{'), calling field with the index in fs of
// each key (-1: unknown) to read the value. It is Object's loop written
// again on purpose: Object's loop with a closure mapping keys to indexes
// made the CSV export 3.5% slower (BenchmarkCSVBatch, median of five
// alternated runs, 2026-12-04: 1.90 ms against 1.97 ms a batch).
func (d *Decoder) object(field func(int) error, fs *FieldSet) error {
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
			return ErrSyntax
		}
		key, err := d.stringBytes(fs != nil)
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return ErrSyntax
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
			return ErrSyntax
		}
	}
}

// array reads an array (at '['), calling elem to read each element.
func (d *Decoder) array(elem func() error) error {
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
			return ErrSyntax
		}
	}
}

// Skip reads and checks any value. It works through nested values in one
// loop, without a call per token: the values callers skip are most of a
// stored result.
func (d *Decoder) Skip() error {
	b, i := d.b, d.i
	var buf [32]byte
	open := buf[:0] // the objects ('{') and arrays ('[') Skip is in
value:
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) {
		return ErrSyntax
	}
	switch c := b[i]; {
	case c == '"':
		start := i + 1
		i = plainEnd(b, start)
		if i < len(b) && b[i] == '"' {
			i++
			break
		}
		d.i = i
		if _, err := d.stringRest(start, false); err != nil {
			return err
		}
		i = d.i
	case c == '{' || c == '[':
		d.depth++
		if d.depth > maxDepth {
			return ErrDepth
		}
		open = append(open, c)
		i++
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i < len(b) && b[i] == c+2 { // '}' or ']': empty
			i++
			open = open[:len(open)-1]
			d.depth--
			break
		}
		if c == '{' {
			goto key
		}
		goto value
	case c == 't' || c == 'f' || c == 'n':
		lit := "null"
		if c == 't' {
			lit = "true"
		} else if c == 'f' {
			lit = "false"
		}
		if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
			return ErrSyntax
		}
		i += len(lit)
	case c == '-' || '0' <= c && c <= '9':
		d.i = i
		if err := d.number(); err != nil {
			return err
		}
		i = d.i
	default:
		return ErrSyntax
	}
	// After a value: a comma and the next one, or the end of containers.
	for len(open) > 0 {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return ErrSyntax
		}
		switch top := open[len(open)-1]; b[i] {
		case ',':
			i++
			if top == '{' {
				goto key
			}
			goto value
		case top + 2: // '}' or ']'
			i++
			open = open[:len(open)-1]
			d.depth--
		default:
			return ErrSyntax
		}
	}
	d.i = i
	return nil
key:
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != '"' {
		return ErrSyntax
	}
	d.i = i
	if _, err := d.stringBytes(false); err != nil {
		return err
	}
	i = d.i
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != ':' {
		return ErrSyntax
	}
	i++
	goto value
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// number reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *Decoder) number() error {
	b, i := d.b, d.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return ErrSyntax
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return ErrSyntax
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return ErrSyntax
		}
		i = j
	}
	d.i = i
	return nil
}

// digits returns the position after the digits at b[i:].
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// Bytes of plain string content: printable ASCII but '"' and '\\'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// swarLo and swarHi are the 0x01 and 0x80 of every byte of a word.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// hasSpecial reports whether any of the 8 bytes of x is not plainByte (a
// borrow can mark bytes above one that is, never a word without one).
func hasSpecial(x uint64) bool {
	q := x ^ (swarLo * '"')
	bs := x ^ (swarLo * '\\')
	return ((x-swarLo*0x20)&^x|(q-swarLo)&^q|(bs-swarLo)&^bs|x)&swarHi != 0
}

// stringBytes reads a string (at '"') and, when want is set, returns its
// decoded bytes: a slice of the input when there is nothing to decode.
func (d *Decoder) stringBytes(want bool) ([]byte, error) {
	d.i++ // "
	start := d.i
	// Plain bytes first: most strings end there.
	b := d.b
	i := plainEnd(b, start)
	if i < len(b) && b[i] == '"' {
		d.i = i + 1
		if !want {
			return nil, nil
		}
		return b[start:i], nil
	}
	d.i = i
	return d.stringRest(start, want)
}

// plainEnd returns the position of the first byte at or after b[i] that is
// not plain (plainByte), 8 at a time and then one by one.
func plainEnd(b []byte, i int) int {
	for i+8 <= len(b) && !hasSpecial(binary.LittleEndian.Uint64(b[i:])) {
		i += 8
	}
	for i < len(b) && plainByte[b[i]] {
		i++
	}
	return i
}

// stringRest is stringBytes for a string starting at b[start], after plain
// bytes up to d.i.
func (d *Decoder) stringRest(start int, want bool) ([]byte, error) {
	plain := true
	for {
		if d.i >= len(d.b) {
			return nil, ErrSyntax
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
				return nil, ErrSyntax
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				if len(d.b)-d.i < 5 || hex4(d.b[d.i+1:d.i+5]) < 0 {
					return nil, ErrSyntax
				}
				d.i += 5
			default:
				return nil, ErrSyntax
			}
		case c < 0x20:
			return nil, ErrSyntax
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
