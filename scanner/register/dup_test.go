package register

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestReaderDuplicates: entries repeating an earlier entry's ID, or its
// address under a new ID, are counted and listed by line number, and still
// returned.
func TestReaderDuplicates(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		"id,email",           // 1
		"c1,Taro@example.jp", // 2
		"c2,hanako@example.jp",
		"c1,taro@example.jp",       // 4: id of line 2 (the address differs in case: not compared)
		"c3,Taro@EXAMPLE.jp.",      // 5: address of line 2 (domain normalised), new id
		"",                         // 6
		"c4,no-at",                 // 7: bad, not a duplicate of anything
		"c2,hanako@example.jp",     // 8: an exact repeat of line 3: a duplicate id only
		",jiro@example.jp",         // 9: no id: its id is "9"
		"9,saburo@example.jp",      // 10: id "9" of line 9
		"c5,hanako@例え.jp",          // 11
		"c6,hanako@xn--r8jz45g.jp", // 12: address of line 11
	}, "\n")
	es, st := readAll(t, strings.NewReader(in), Options{Duplicates: true})
	if len(es) != 9 || st.OK != 9 {
		t.Fatalf("%d entries, OK %d; want 9 (duplicates are returned)", len(es), st.OK)
	}
	if st.DuplicateIDs != 3 || st.DuplicateAddresses != 2 {
		t.Errorf("duplicate ids %d, addresses %d; want 3, 2", st.DuplicateIDs, st.DuplicateAddresses)
	}
	if want := []Duplicate{{4, 2}, {8, 3}, {10, 9}}; !reflect.DeepEqual(st.DuplicateIDLines, want) {
		t.Errorf("DuplicateIDLines %v, want %v", st.DuplicateIDLines, want)
	}
	if want := []Duplicate{{5, 2}, {12, 11}}; !reflect.DeepEqual(st.DuplicateAddressLines, want) {
		t.Errorf("DuplicateAddressLines %v, want %v", st.DuplicateAddressLines, want)
	}

	// Without the option nothing is counted.
	_, st = readAll(t, strings.NewReader(in), Options{})
	if st.DuplicateIDs != 0 || st.DuplicateAddresses != 0 || st.DuplicateIDLines != nil {
		t.Errorf("duplicates counted without Options.Duplicates: %+v", st)
	}
}

// TestReaderDuplicatesPlain: one address per line, the id is the line
// number, so only addresses repeat; the line lists are bounded.
func TestReaderDuplicatesPlain(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for range 50 {
		b.WriteString("same@example.org\n")
	}
	for i := range 20000 { // enough to grow the tables several times
		fmt.Fprintf(&b, "u%d@d%d.example\n", i, i%97)
	}
	b.WriteString("u7@d7.example\n") // line 20051 repeats line 58
	_, st := readAll(t, strings.NewReader(b.String()), Options{Duplicates: true, MaxBadLineNumbers: 10})
	if st.DuplicateIDs != 0 || st.DuplicateAddresses != 50 {
		t.Fatalf("duplicate ids %d, addresses %d; want 0, 50", st.DuplicateIDs, st.DuplicateAddresses)
	}
	if len(st.DuplicateAddressLines) != 10 || st.DuplicateAddressLines[0] != (Duplicate{2, 1}) {
		t.Errorf("DuplicateAddressLines %v: want 10, starting {2 1}", st.DuplicateAddressLines)
	}
	// The table keeps first lines across growth.
	rd := NewReader(strings.NewReader(b.String()), Options{Duplicates: true, MaxBadLineNumbers: -1})
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
	}
	if st := rd.Stats(); st.DuplicateAddresses != 50 || len(st.DuplicateAddressLines) != 0 {
		t.Errorf("MaxBadLineNumbers < 0: %d duplicates, %d lines kept", st.DuplicateAddresses, len(st.DuplicateAddressLines))
	}
}

// TestDupLogOrder: within a partition records are checked in line order,
// so the first line is the earliest, and a repeat of a repeat names the
// first.
func TestDupLogOrder(t *testing.T) {
	t.Parallel()
	var l dupLog
	const n = 100000
	for i := range int64(n) {
		l.add(uint64(i)*0x9E3779B97F4A7C15, i+1)
	}
	for i := range int64(n) {
		if i%1000 == 0 {
			l.add(uint64(i)*0x9E3779B97F4A7C15, n+1+i)
			l.add(uint64(i)*0x9E3779B97F4A7C15, 2*n+1+i)
		}
	}
	got := 0
	l.each(func(line, first int64) {
		got++
		i := (line - 1) % n
		if first != i+1 || line <= n {
			t.Errorf("line %d: first %d, want %d", line, first, i+1)
		}
	})
	if got != 200 {
		t.Errorf("%d duplicates, want 200", got)
	}
	l.each(func(line, first int64) { t.Errorf("records kept after each: line %d", line) })
}
