package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tlsready.db")
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	// The scan: one writer, holding the scan lock.
	st, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	unlock, err := st.LockScan()
	if err != nil {
		log.Fatal(err)
	}
	defer unlock()
	run, resumed, err := st.BeginRun(ctx, "register.csv|1234|5678", now)
	if err != nil {
		log.Fatal(err)
	}
	err = st.AddRecipients(ctx, run.ID, []store.Recipient{
		{ID: "1", Domain: "example.org"},
		{ID: "2", Domain: "example.org"},
		{ID: "3", Domain: "example.net"},
	})
	if err != nil {
		log.Fatal(err)
	}
	pending, err := st.PendingDomains(ctx, run.ID, now.Add(-24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("resumed:", resumed, "pending:", pending)

	w := st.NewWriter(100, time.Second)
	w.Add(result.Result{Domain: "example.org", Verdict: result.Verified, ScannedAt: now, RunID: run.ID})
	w.Add(result.Result{Domain: "example.net", Verdict: result.Plaintext, ScannedAt: now, RunID: run.ID,
		Flags: []string{result.FlagNoSTARTTLS}})
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	if err := st.FinishRun(ctx, run.ID, store.RunStats{Recipients: 3, Domains: 2}, now.Add(time.Minute)); err != nil {
		log.Fatal(err)
	}

	// A reader, e.g. the gateway in another process.
	ro, err := store.Open(ctx, path, store.Options{ReadOnly: true})
	if err != nil {
		log.Fatal(err)
	}
	defer ro.Close()
	r, err := ro.Lookup(ctx, "example.org")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("example.org:", r.Verdict)
	err = ro.RunDomains(ctx, run.ID, func(d store.RunDomain) error {
		fmt.Println(d.Domain, d.Citizens, d.Verdict, d.Flags)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// resumed: false pending: [example.net example.org]
	// example.org: verified
	// example.org 2 verified []
	// example.net 1 plaintext [starttls-not-offered]
}
