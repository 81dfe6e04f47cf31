package smtpprobe

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReadReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		code  int
		lines []string
		err   error
		rest  string // what must be left unread
	}{
		{"single", "220 mx ESMTP\r\n", 220, []string{"mx ESMTP"}, nil, ""},
		{"bare-code", "250\r\n", 250, []string{""}, nil, ""},
		{"bare-lf", "250-a\n250 b\n", 250, []string{"a", "b"}, nil, ""},
		{"multi", "250-mx\r\n250-SIZE 1\r\n250 STARTTLS\r\nnext", 250, []string{"mx", "SIZE 1", "STARTTLS"}, nil, "next"},
		{"empty-text", "250-\r\n250 \r\n", 250, []string{"", ""}, nil, ""},
		{"exact-max-len", "250 " + strings.Repeat("a", 12) + "\r\n", 250, []string{strings.Repeat("a", 12)}, nil, ""},
		{"too-long", "250 " + strings.Repeat("a", 13) + "\r\n", 0, nil, ErrLineTooLong, ""},
		{"too-long-no-newline", strings.Repeat("a", 100), 0, nil, ErrLineTooLong, ""},
		{"too-many", strings.Repeat("250-x\r\n", 5) + "250 x\r\n", 250, nil, ErrTooManyLines, ""},
		{"max-lines", strings.Repeat("250-x\r\n", 4) + "250 x\r\n", 250, []string{"x", "x", "x", "x", "x"}, nil, ""},
		{"code-mismatch", "250-a\r\n251 b\r\n", 0, nil, ErrMalformedReply, ""},
		{"bad-separator", "250+a\r\n", 0, nil, ErrMalformedReply, ""},
		{"not-digits", "2x0 a\r\n", 0, nil, ErrMalformedReply, ""},
		{"short", "25\r\n", 0, nil, ErrMalformedReply, ""},
		{"code-600", "600 a\r\n", 0, nil, ErrMalformedReply, ""},
		{"code-0xx", "050 a\r\n", 0, nil, ErrMalformedReply, ""},
		{"empty-line", "\r\n", 0, nil, ErrMalformedReply, ""},
		{"eof", "", 0, nil, io.EOF, ""},
		{"eof-mid-line", "250 ab", 0, nil, io.ErrUnexpectedEOF, ""},
		{"eof-mid-reply", "250-a\r\n", 0, nil, io.ErrUnexpectedEOF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A 16-byte buffer exercises lines longer than the buffer.
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			code, lines, err := ReadReply(r, 5, 16)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if code != tt.code || !slices.Equal(lines, tt.lines) {
				t.Errorf("got %d %q, want %d %q", code, lines, tt.code, tt.lines)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tt.rest {
				t.Errorf("left %q, want %q", rest, tt.rest)
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadReplyBounded(t *testing.T) {
	t.Parallel()
	// An endless line and an endless reply are cut off after a bounded read.
	for _, in := range []io.Reader{
		endless("a"),
		endless("250-more\r\n"),
	} {
		cr := &countingReader{r: in}
		_, _, err := ReadReply(bufio.NewReader(cr), MaxReplyLines, MaxLineLen)
		if !errors.Is(err, ErrLineTooLong) && !errors.Is(err, ErrTooManyLines) {
			t.Errorf("err = %v", err)
		}
		if limit := MaxReplyLines*(MaxLineLen+2) + 2*4096; cr.n > limit {
			t.Errorf("read %d bytes, limit %d", cr.n, limit)
		}
	}
}

// endless repeats s forever.
type endlessReader struct {
	s   string
	off int
}

func endless(s string) *endlessReader { return &endlessReader{s: s} }

func (e *endlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.s[e.off%len(e.s)]
		e.off++
	}
	return len(p), nil
}

func TestParseEHLO(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lines []string
		want  []string
	}{
		{nil, nil},
		{[]string{"mx.example.test Hello"}, nil},
		{[]string{"mx", "starttls", "SIZE 1000", "8BITMIME", "STARTTLS"}, []string{"STARTTLS", "SIZE", "8BITMIME"}},
		{[]string{"mx", "AUTH=LOGIN PLAIN", "AUTH LOGIN", "-BAD", "", "  ", "X-EXT arg", "SIZE\t100"}, []string{"AUTH", "X-EXT"}},
		{[]string{"mx STARTTLS", "SIZE 10 STARTTLS", "XSTARTTLS"}, []string{"SIZE", "XSTARTTLS"}},
		{[]string{"mx", " PIPELINING "}, []string{"PIPELINING"}},
	}
	for _, tt := range tests {
		if got := ParseEHLO(tt.lines); !slices.Equal(got, tt.want) {
			t.Errorf("ParseEHLO(%q) = %q, want %q", tt.lines, got, tt.want)
		}
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"plain text", 200, "plain text"},
		{"a\x00b\tc\x7f", 200, "a?b?c?"},
		{"bad\xffutf8", 200, "bad?utf8"},
		{"ééé", 5, "éé"},
		{"abc", 2, "ab"},
	}
	for _, tt := range tests {
		if got := sanitize(tt.in, tt.n); got != tt.want {
			t.Errorf("sanitize(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 mx ESMTP\r\n", "250-mx\r\n250-SIZE\r\n250 STARTTLS\r\n", "250\r\n", "250-a\n250 b\n",
		"250-a\r\n251 b\r\n", "", "2", "554 \xff\x00\r\n", strings.Repeat("250-x\r\n", 10),
	} {
		f.Add([]byte(s))
	}
	const maxLines, maxLen, bufSize = 5, 20, 16
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: strings.NewReader(string(data))}
		code, lines, err := ReadReply(bufio.NewReaderSize(cr, bufSize), maxLines, maxLen)
		if cr.n > maxLines*(maxLen+2)+2*bufSize {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err != nil {
			return
		}
		if code < 100 || code > 599 || len(lines) == 0 || len(lines) > maxLines {
			t.Fatalf("code %d, %d lines", code, len(lines))
		}
		for _, l := range lines {
			if len(l) > maxLen || strings.ContainsAny(l, "\n") {
				t.Fatalf("line %q", l)
			}
		}
	})
}

func FuzzParseEHLO(f *testing.F) {
	for _, s := range []string{
		"mx\nSTARTTLS\nSIZE 10\n8BITMIME", "mx\nstarttls", "mx\nAUTH=LOGIN\n-x\nX-A-B c", "", "only greeting",
		"mx\n\xff\xfe\nSTARTTLS STARTTLS\nstartTLS",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		kw := ParseEHLO(lines)
		if len(kw) > max(len(lines)-1, 0) {
			t.Fatalf("%d keywords from %d lines", len(kw), len(lines))
		}
		seen := map[string]bool{}
		for _, k := range kw {
			if !isKeyword(k) || k != strings.ToUpper(k) || !utf8.ValidString(k) || seen[k] {
				t.Fatalf("bad keyword %q in %q", k, kw)
			}
			seen[k] = true
		}
	})
}
