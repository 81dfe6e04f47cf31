package smtpprobe

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on what the probe reads from a server.
const (
	MaxReplyLines = 100  // lines in one SMTP reply
	MaxLineLen    = 1000 // bytes in one reply line, without CRLF (RFC 5321 §4.5.3.1.5: 512)
	maxStoredLen  = 200  // bytes of a banner or reply line kept in a result
)

// Errors of ReadReply besides the reader's own (io.EOF, io.ErrUnexpectedEOF,
// net timeouts).
var (
	ErrLineTooLong    = errors.New("smtpprobe: reply line too long")
	ErrTooManyLines   = errors.New("smtpprobe: too many reply lines")
	ErrMalformedReply = errors.New("smtpprobe: malformed reply")
)

// ReadReply reads one SMTP reply (RFC 5321 §4.2): zero or more "ddd-text"
// continuation lines and a last "ddd text" (or bare "ddd") line, all with the
// same code. It returns the code and the text of each line (after the code and
// separator, without the line ending). Lines may end in CRLF or a bare LF.
//
// Reading is bounded: at most maxLines lines of at most maxLen bytes each;
// more is an error (ErrTooManyLines, ErrLineTooLong), never a silent cut, and
// at most about maxLen+2 bytes beyond the last accepted line are consumed from
// r. A reply that does not follow the grammar is ErrMalformedReply. io.EOF is
// returned when r ends before the first byte, io.ErrUnexpectedEOF when it ends
// inside the reply.
func ReadReply(r *bufio.Reader, maxLines, maxLen int) (code int, lines []string, err error) {
	maxLines = max(maxLines, 1)
	maxLen = max(maxLen, 3)
	for n := 0; ; n++ {
		if n == maxLines {
			return code, lines, ErrTooManyLines
		}
		line, err := readLine(r, maxLen)
		if err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return code, lines, err
		}
		c, last, text, ok := parseReplyLine(line)
		if !ok || (n > 0 && c != code) {
			return code, lines, ErrMalformedReply
		}
		code = c
		lines = append(lines, text)
		if last {
			return code, lines, nil
		}
	}
}

// readLine reads one line of at most maxLen bytes (without its LF or CRLF),
// consuming at most maxLen+2 bytes plus what is already buffered.
func readLine(r *bufio.Reader, maxLen int) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > maxLen+2 {
			return "", ErrLineTooLong
		}
		switch {
		case err == nil:
			var line string
			if buf == nil {
				line = string(frag)
			} else {
				line = string(append(buf, frag...))
			}
			line = strings.TrimSuffix(line[:len(line)-1], "\r")
			if len(line) > maxLen {
				return "", ErrLineTooLong
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			buf = append(buf, frag...)
		default:
			if len(buf)+len(frag) > 0 && errors.Is(err, io.EOF) {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// parseReplyLine splits "ddd-text", "ddd text" or "ddd". The code must be
// three digits with a first digit 1-5 (RFC 5321 §4.2: "%x32-35 %x30-35 %x30-39",
// widened a little for tolerance).
func parseReplyLine(line string) (code int, last bool, text string, ok bool) {
	if len(line) < 3 {
		return 0, false, "", false
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", false
		}
	}
	if line[0] < '1' || line[0] > '5' {
		return 0, false, "", false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, true, "", true
	}
	switch line[3] {
	case ' ':
		return code, true, line[4:], true
	case '-':
		return code, false, line[4:], true
	}
	return 0, false, "", false
}

// ParseEHLO returns the extension keywords of an EHLO reply, upper-cased, in
// order and without duplicates. lines are the texts returned by ReadReply; the
// first is the greeting and is skipped. A keyword is the first word of a line
// and must follow RFC 5321 §4.1.1.1 (ehlo-keyword = (ALPHA / DIGIT)
// *(ALPHA / DIGIT / "-")); lines whose first word is not a keyword are ignored.
func ParseEHLO(lines []string) []string {
	if len(lines) < 2 {
		return nil
	}
	var kw []string
	for _, line := range lines[1:] {
		word, _, _ := strings.Cut(strings.TrimLeft(line, " \t"), " ")
		word = strings.TrimRight(word, " \t")
		if !isKeyword(word) {
			continue
		}
		word = strings.ToUpper(word)
		if !slices.Contains(kw, word) {
			kw = append(kw, word)
		}
	}
	return kw
}

func isKeyword(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-') {
			return false
		}
	}
	return true
}

// sanitize returns s as printable UTF-8 of at most n bytes: invalid bytes and
// non-printable runes become '?', and a longer string is cut at a rune boundary.
func sanitize(s string, n int) string {
	var b strings.Builder
	b.Grow(min(len(s), n))
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
