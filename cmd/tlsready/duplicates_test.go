package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/store"
)

// TestScanDuplicates: register lines repeating an earlier line's id, or its
// address under another id, are counted and named by line number in the
// log, the summary and the run's stats, and the totals agree: entries minus
// duplicate ids are the citizens everywhere.
func TestScanDuplicates(t *testing.T) {
	world, _, _ := demoWorld(t)
	input := filepath.Join(t.TempDir(), "reg.csv")
	reg := strings.Join([]string{
		"id,email",                 // 1
		"c1,taro@bigmail.test",     // 2
		"c2,hanako@chuo-ward.test", // 3
		"c1,taro@chuo-ward.test",   // 4: id of line 2, replaces it
		"c3,taro@bigmail.test",     // 5: address of line 2 under a new id
		"c4,no-at",                 // 6: bad
		"c2,hanako@chuo-ward.test", // 7: line 3 again: a duplicate id only
	}, "\n") + "\n"
	if err := os.WriteFile(input, []byte(reg), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "t.db")
	code, out, stderr := runCLI(t, scanArgs(world, input, db)...)
	if code != exitOK {
		t.Fatalf("scan: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"run 1: 3 citizens at 2 domains",
		"2 of 5 register entries repeat an earlier line's id and replace it, so 3 citizens (lines 4 (first 2), 7 (first 3))",
		"1 register entry repeats an earlier line's address under another id, each counted as a citizen (line 5 (first 2))",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		`msg="register read" lines=7 entries=5 bad_lines=1 duplicate_ids=2 duplicate_addresses=1 recipients=3`,
		`msg="lines repeat an earlier line's id: the later line replaces the earlier, one citizen" count=2 first_lines="lines 4 (first 2), 7 (first 3)"`,
		`msg="lines repeat an earlier line's address under another id: a citizen each" count=1 first_lines="line 5 (first 2)"`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("log lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(out+stderr, "taro") || strings.Contains(out+stderr, "hanako") {
		t.Error("an address leaked into the output")
	}

	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, err := st.LatestFinishedRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := run.Stats
	if s.Lines != 7 || s.Entries != 5 || s.BadLines != 1 || s.Recipients != 3 || s.DuplicateIDs != 2 || s.DuplicateAddrs != 1 {
		t.Errorf("run stats lines/entries/bad/recipients/dup ids/dup addresses = %d/%d/%d/%d/%d/%d, want 7/5/1/3/2/1",
			s.Lines, s.Entries, s.BadLines, s.Recipients, s.DuplicateIDs, s.DuplicateAddrs)
	}
	if want := []store.DuplicateLine{{Line: 4, First: 2}, {Line: 7, First: 3}}; !reflect.DeepEqual(s.DuplicateIDLines, want) {
		t.Errorf("duplicate id lines %v, want %v", s.DuplicateIDLines, want)
	}
	if want := []store.DuplicateLine{{Line: 5, First: 2}}; !reflect.DeepEqual(s.DuplicateAddrLines, want) {
		t.Errorf("duplicate address lines %v, want %v", s.DuplicateAddrLines, want)
	}
	var citizens int64
	perDomain := map[string]int64{}
	if err := st.RunDomains(ctx, run.ID, func(d store.RunDomain) error {
		citizens += d.Citizens
		perDomain[d.Domain] = d.Citizens
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The later line wins: c1 is at chuo-ward.test now.
	if citizens != s.Recipients || perDomain["chuo-ward.test"] != 2 || perDomain["bigmail.test"] != 1 {
		t.Errorf("citizens in the database %d (%v), run stats say %d", citizens, perDomain, s.Recipients)
	}
}
