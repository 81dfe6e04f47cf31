package register

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads every entry; it fails the test on a read error.
func readAll(t testing.TB, r io.Reader, opts Options) ([]Entry, Stats) {
	t.Helper()
	rd := NewReader(r, opts)
	var out []Entry
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, e)
	}
	return out, rd.Stats()
}

// wantStats compares the counters and bad line numbers of st.
func wantStats(t *testing.T, st Stats, lines, ok, bad, skipped int64, badLines map[string][]int64) {
	t.Helper()
	if st.Lines != lines || st.OK != ok || st.Bad != bad || st.Skipped != skipped {
		t.Errorf("Stats lines/ok/bad/skipped = %d/%d/%d/%d, want %d/%d/%d/%d",
			st.Lines, st.OK, st.Bad, st.Skipped, lines, ok, bad, skipped)
	}
	if badLines == nil {
		badLines = map[string][]int64{}
	}
	if !reflect.DeepEqual(st.BadLines, badLines) {
		t.Errorf("BadLines = %v, want %v", st.BadLines, badLines)
	}
	byReason := map[string]int64{}
	for k, v := range badLines {
		byReason[k] = int64(len(v))
	}
	if !maps.Equal(st.ByReason, byReason) {
		t.Errorf("ByReason = %v, want %v", st.ByReason, byReason)
	}
}

func TestReaderPlain(t *testing.T) {
	t.Parallel()
	in := "\xef\xbb\xbfAlice@Example.ORG\r\n" + // 1: BOM, CRLF
		"\r\n" + // 2: blank
		"# a comment\n" + // 3
		"  bob@BÜCHER.example.  \n" + // 4
		"no-at-sign\n" + // 5
		"@example.org\n" + // 6
		"carol@\n" + // 7
		strings.Repeat("x", 65) + "@example.org\n" + // 8
		"dave@-bad.example\n" + // 9
		"erin@[192.0.2.1]\n" + // 10
		"fr\xffank@example.org\n" + // 11
		"   \t \n" + // 12: blank
		"ユーザー@例え.テスト\n" + // 13
		"grace@example.org" // 14: no final line end
	entries, st := readAll(t, strings.NewReader(in), Options{})
	want := []Entry{
		{Line: 1, ID: "1", Domain: "example.org"},
		{Line: 4, ID: "4", Domain: "xn--bcher-kva.example", Unicode: "bücher.example"},
		{Line: 13, ID: "13", Domain: "xn--r8jz45g.xn--zckzah", Unicode: "例え.テスト"},
		{Line: 14, ID: "14", Domain: "example.org"},
	}
	if !slices.Equal(entries, want) {
		t.Errorf("entries =\n%+v\nwant\n%+v", entries, want)
	}
	wantStats(t, st, 14, 4, 7, 3, map[string][]int64{
		ReasonNoAt: {5}, ReasonEmptyLocal: {6}, ReasonEmptyDomain: {7}, ReasonLocalTooLong: {8},
		ReasonInvalidDomain: {9}, ReasonAddressLiteral: {10}, ReasonInvalidUTF8: {11},
	})
	if st.CSV {
		t.Error("plain input detected as CSV")
	}
}

func TestReaderKeepAddresses(t *testing.T) {
	t.Parallel()
	in := "Alice@Example.ORG\nbob@bücher.example\n"
	for _, keep := range []bool{false, true} {
		entries, _ := readAll(t, strings.NewReader(in), Options{KeepAddresses: keep})
		want := []string{"", ""}
		if keep {
			want = []string{"Alice@example.org", "bob@xn--bcher-kva.example"}
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Address)
		}
		if !slices.Equal(got, want) {
			t.Errorf("KeepAddresses=%v: addresses %q, want %q", keep, got, want)
		}
	}
}

func TestReaderEmptyInput(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "\n", "\xef\xbb\xbf", "# only a comment", "\r\n\r\n"} {
		rd := NewReader(strings.NewReader(in), Options{})
		for range 2 { // io.EOF is sticky
			if _, err := rd.Next(); err != io.EOF {
				t.Errorf("%q: Next error = %v, want io.EOF", in, err)
			}
		}
		st := rd.Stats()
		if st.OK != 0 || st.Bad != 0 || st.Skipped != st.Lines {
			t.Errorf("%q: stats %+v", in, st)
		}
	}
}

func TestReaderCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		want     []Entry
		lines    int64
		skipped  int64
		badLines map[string][]int64
	}{
		{
			name: "id first",
			in:   "id,email\n7,a@example.org\n8,b@example.net\n",
			want: []Entry{
				{Line: 2, ID: "7", Domain: "example.org"},
				{Line: 3, ID: "8", Domain: "example.net"},
			},
			lines: 3, skipped: 1,
		},
		{
			name: "email first, extra columns, header case and spaces, BOM, CRLF",
			in:   "\xef\xbb\xbf Name , EMAIL ,Id,city\r\nAnn,a@Example.ORG,x-1,Bern\r\n\r\nBen,b@bücher.example,x-2\r\n",
			want: []Entry{
				{Line: 2, ID: "x-1", Domain: "example.org"},
				{Line: 4, ID: "x-2", Domain: "xn--bcher-kva.example", Unicode: "bücher.example"},
			},
			lines: 4, skipped: 2,
		},
		{
			name: "no id column: line numbers",
			in:   "email\na@example.org\n\"b@example.org\"\n",
			want: []Entry{
				{Line: 2, ID: "2", Domain: "example.org"},
				{Line: 3, ID: "3", Domain: "example.org"},
			},
			lines: 3, skipped: 1,
		},
		{
			name: "quoted fields",
			in:   "name,email,id\n\"Doe, Jane\",\"jane@example.org\",\"1\"\n\"He said \"\"hi\"\"\", \"x@example.org\",2\n",
			want: []Entry{
				{Line: 2, ID: "1", Domain: "example.org"},
				{Line: 3, ID: "2", Domain: "example.org"},
			},
			lines: 3, skipped: 1,
		},
		{
			name: "comments before the header",
			in:   "# export of 2025-01-01\n\nid;email\n1;a@example.org\n# not a comment in CSV\n",
			want: []Entry{
				{Line: 4, ID: "1", Domain: "example.org"},
			},
			lines: 5, skipped: 3,
			badLines: map[string][]int64{ReasonMissingEmailField: {5}},
		},
		{
			name:  "tab separated",
			in:    "email\tid\na@example.org\t9\n",
			want:  []Entry{{Line: 2, ID: "9", Domain: "example.org"}},
			lines: 2, skipped: 1,
		},
		{
			name: "bad records, then the reader continues",
			in: "id,email\n" +
				"1,a@example.org\n" + // 2
				"2,\"b@example.org\n" + // 3: quote left open
				"c@example.org\",x\n" + // 4: the would-be continuation: bare quote
				"4,d\"x\"@example.org\n" + // 5: bare quote
				"5\n" + // 6: no email field
				"6,  \n" + // 7: empty email field
				",f@example.org\n" + // 8: empty id
				"9,no-at\n" + // 9
				"10,j@[192.0.2.1]\n" + // 10
				"11,k@example.org\n", // 11
			want: []Entry{
				{Line: 2, ID: "1", Domain: "example.org"},
				{Line: 8, ID: "8", Domain: "example.org"},
				{Line: 11, ID: "11", Domain: "example.org"},
			},
			lines: 11, skipped: 1,
			badLines: map[string][]int64{
				ReasonCSVMalformed:      {3, 4, 5},
				ReasonMissingEmailField: {6, 7},
				ReasonNoAt:              {9},
				ReasonAddressLiteral:    {10},
			},
		},
		{
			name:  "email only in a later header column is still a header",
			in:    "a,b,c,e-mail,email\n1,2,3,x,z@example.org\n",
			want:  []Entry{{Line: 2, ID: "2", Domain: "example.org"}},
			lines: 2, skipped: 1,
		},
		{
			name:     "no email column: plain, and the first line is data",
			in:       "mail,id\na@example.org\n",
			want:     []Entry{{Line: 2, ID: "2", Domain: "example.org"}},
			lines:    2,
			badLines: map[string][]int64{ReasonNoAt: {1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entries, st := readAll(t, strings.NewReader(tt.in), Options{})
			if !slices.Equal(entries, tt.want) {
				t.Errorf("entries =\n%+v\nwant\n%+v", entries, tt.want)
			}
			var bad int64
			for _, l := range tt.badLines {
				bad += int64(len(l))
			}
			wantStats(t, st, tt.lines, int64(len(tt.want)), bad, tt.skipped, tt.badLines)

			// Every line through encoding/csv gives the same.
			slow := NewReader(strings.NewReader(tt.in), Options{})
			slow.slowCSV = true
			var slowEntries []Entry
			for {
				e, err := slow.Next()
				if err != nil {
					break
				}
				slowEntries = append(slowEntries, e)
			}
			if !slices.Equal(slowEntries, entries) || !reflect.DeepEqual(slow.Stats(), st) {
				t.Errorf("encoding/csv on every line: %+v, %+v", slowEntries, slow.Stats())
			}
		})
	}
}

func TestReaderCSVKeepAddresses(t *testing.T) {
	t.Parallel()
	entries, _ := readAll(t, strings.NewReader("email\n\"\"\"A B\"\"@Example.org\"\n"), Options{KeepAddresses: true})
	if len(entries) != 1 || entries[0].Address != `"A B"@example.org` {
		t.Errorf("entries = %+v", entries)
	}
}

func TestReaderLongLines(t *testing.T) {
	t.Parallel()
	const max = 100
	exact := strings.Repeat("a", max-len("@example.org")) + "@example.org"
	// A local part over 64 octets is bad, but the line is not too long:
	// "local-too-long" proves the line was read whole.
	in := exact + "\n" + // 1: exactly max: read (local-too-long)
		exact + "\r\n" + // 2: exactly max plus CRLF
		"x" + exact + "\n" + // 3: max+1: too long
		"ok@example.org\n" + // 4
		strings.Repeat("y", 10<<20) + "\n" + // 5: 10 MB
		"ok@example.net\n" + // 6
		strings.Repeat("z", 3*readBufferSize) // 7: long and unterminated
	rd := NewReader(strings.NewReader(in), Options{MaxLineBytes: max})
	var entries []Entry
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	if cap(rd.long) > max+2 {
		t.Errorf("long-line buffer grew to %d bytes", cap(rd.long))
	}
	want := []Entry{{Line: 4, ID: "4", Domain: "example.org"}, {Line: 6, ID: "6", Domain: "example.net"}}
	if !slices.Equal(entries, want) {
		t.Errorf("entries = %+v, want %+v", entries, want)
	}
	wantStats(t, rd.Stats(), 7, 2, 5, 0, map[string][]int64{
		ReasonLocalTooLong: {1, 2},
		ReasonTooLong:      {3, 5, 7},
	})
}

// A line longer than the read buffer but within MaxLineBytes is read whole.
func TestReaderLineLongerThanBuffer(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat("p", 2*readBufferSize)
	in := "id,email,note\n1,a@example.org," + pad + "\r\n2,b@example.org,\"" + pad + "\"\n"
	entries, st := readAll(t, strings.NewReader(in), Options{MaxLineBytes: 3 * readBufferSize})
	want := []Entry{{Line: 2, ID: "1", Domain: "example.org"}, {Line: 3, ID: "2", Domain: "example.org"}}
	if !slices.Equal(entries, want) {
		t.Errorf("entries = %+v, want %+v", entries, want)
	}
	wantStats(t, st, 3, 2, 0, 1, nil)
}

func TestReaderBadLineNumbersBounded(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("bad\n", 10) + "ok@example.org\n"
	for _, tt := range []struct {
		max  int
		want []int64
	}{
		{max: 3, want: []int64{1, 2, 3}},
		{max: 0, want: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{max: -1, want: nil},
	} {
		_, st := readAll(t, strings.NewReader(in), Options{MaxBadLineNumbers: tt.max})
		if got := st.BadLines[ReasonNoAt]; !slices.Equal(got, tt.want) {
			t.Errorf("max %d: BadLines = %v, want %v", tt.max, got, tt.want)
		}
		if st.ByReason[ReasonNoAt] != 10 || st.Bad != 10 || st.OK != 1 {
			t.Errorf("max %d: stats %+v", tt.max, st)
		}
	}
}

func TestStatsIsACopy(t *testing.T) {
	t.Parallel()
	rd := NewReader(strings.NewReader("bad\nbad\n"), Options{})
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
	}
	st := rd.Stats()
	st.ByReason[ReasonNoAt] = 99
	st.BadLines[ReasonNoAt][0] = 99
	if st2 := rd.Stats(); st2.ByReason[ReasonNoAt] != 2 || st2.BadLines[ReasonNoAt][0] != 1 {
		t.Errorf("Stats shares state with the Reader: %+v", st2)
	}
}

// errAfter returns its data, then err.
type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestReaderReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tail := range []string{"", "partial@exam", strings.Repeat("x", 2*readBufferSize)} {
		r := &errAfter{r: iotest.OneByteReader(strings.NewReader("a@example.org\n" + tail)), err: boom}
		rd := NewReader(r, Options{})
		if e, err := rd.Next(); err != nil || e.Domain != "example.org" {
			t.Fatalf("first Next = %+v, %v", e, err)
		}
		for range 2 { // sticky
			_, err := rd.Next()
			if !errors.Is(err, ErrRead) || !errors.Is(err, boom) {
				t.Errorf("tail %d bytes: Next error = %v, want ErrRead wrapping boom", len(tail), err)
			}
		}
		if st := rd.Stats(); st.Lines != 1 || st.OK != 1 {
			t.Errorf("stats after error: %+v", st)
		}
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestOpen(t *testing.T) {
	t.Parallel()
	const content = "id,email\n1,a@example.org\n2,b@bücher.example\n"
	zipped := gzipped(t, content)
	for _, tt := range []struct{ name, file string }{
		{"plain", writeFile(t, "register.csv", []byte(content))},
		{"gzip without .gz", writeFile(t, "register.csv", zipped)},
		{"gzip with .gz", writeFile(t, "register.csv.gz", zipped)},
		{"one byte", writeFile(t, "x", []byte{0x1f})},
	} {
		rc, err := Open(tt.file)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Errorf("%s: read: %v", tt.name, err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("%s: close: %v", tt.name, err)
		}
		want := content
		if tt.name == "one byte" {
			want = "\x1f"
		}
		if string(got) != want {
			t.Errorf("%s: read %q, want %q", tt.name, got, want)
		}
	}

	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: error %v, want os.ErrNotExist", err)
	}
	if _, err := Open(writeFile(t, "bad.gz", []byte{0x1f, 0x8b, 0, 0})); err == nil {
		t.Error("a broken gzip header opened without error")
	}
}

func TestOpenTruncatedGzip(t *testing.T) {
	t.Parallel()
	var content strings.Builder
	for range 5000 {
		content.WriteString("someone@example.org\n")
	}
	zipped := gzipped(t, content.String())
	rc, err := Open(writeFile(t, "cut.gz", zipped[:len(zipped)-10]))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rd := NewReader(rc, Options{})
	for {
		_, err = rd.Next()
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrRead) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated gzip: Next error = %v, want ErrRead wrapping io.ErrUnexpectedEOF", err)
	}
}

// Not parallel: it swaps os.Stdin (parallel tests wait until it is done).
func TestOpenStdin(t *testing.T) {
	f, err := os.Open(writeFile(t, "stdin", gzipped(t, "a@example.org\n")))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = saved })

	rc, err := Open("-")
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := readAll(t, rc, Options{})
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Domain != "example.org" {
		t.Errorf("entries = %+v", entries)
	}
	// Close left standard input open.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Errorf("stdin closed by Close: %v", err)
	}
}
